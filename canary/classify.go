package canary

import (
	"net/http"
	"strconv"
	"strings"
)

// Response is what the splitter knows of a completed request when it
// classifies it. The zero value is a request that wrote nothing.
type Response struct {
	Request *http.Request
	// Status is the status written: 200 when the handler wrote a body
	// without one, 0 when it wrote nothing at all (the server then
	// answers 200).
	Status int
	// Header is the response header after the handler returned. Trailers
	// are in it: grpc-go's ServeHTTP sets them there, and an Upstream
	// (httputil.ReverseProxy) copies the upstream's trailers there,
	// under their name or http.TrailerPrefix and their name.
	Header http.Header
}

// Classifier reports whether a completed request counts as an error of the
// variant that served it: what the error rate of the analysis counts. A
// recovered panic is an error whatever the classifier says; a request whose
// client went away is never one (see Splitter.ServeHTTP). A Classifier
// runs on every request: keep it cheap and free of side effects.
type Classifier func(Response) bool

// HTTPErrors is the default Classifier: a 5xx status is an error (an
// unreachable Upstream answers 502).
func HTTPErrors(r Response) bool { return r.Status >= 500 }

// GRPCCode is a gRPC status code (google.golang.org/grpc/codes.Code has
// the same values). The zero value is GRPCOK.
type GRPCCode uint32

// gRPC status codes.
const (
	GRPCOK                 GRPCCode = 0
	GRPCCanceled           GRPCCode = 1
	GRPCUnknown            GRPCCode = 2
	GRPCInvalidArgument    GRPCCode = 3
	GRPCDeadlineExceeded   GRPCCode = 4
	GRPCNotFound           GRPCCode = 5
	GRPCAlreadyExists      GRPCCode = 6
	GRPCPermissionDenied   GRPCCode = 7
	GRPCResourceExhausted  GRPCCode = 8
	GRPCFailedPrecondition GRPCCode = 9
	GRPCAborted            GRPCCode = 10
	GRPCOutOfRange         GRPCCode = 11
	GRPCUnimplemented      GRPCCode = 12
	GRPCInternal           GRPCCode = 13
	GRPCUnavailable        GRPCCode = 14
	GRPCDataLoss           GRPCCode = 15
	GRPCUnauthenticated    GRPCCode = 16
)

// DefaultGRPCErrorCodes returns the codes GRPCErrors counts as errors when
// given none: the server-side failures (the codes OpenTelemetry marks as
// a server span's error): Unknown, DeadlineExceeded, Unimplemented,
// Internal, Unavailable and DataLoss. Codes that describe the caller's
// request (InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
// Unauthenticated, FailedPrecondition, OutOfRange...) are answers, not
// failures of the version that gave them.
func DefaultGRPCErrorCodes() []GRPCCode {
	return []GRPCCode{GRPCUnknown, GRPCDeadlineExceeded, GRPCUnimplemented, GRPCInternal, GRPCUnavailable, GRPCDataLoss}
}

// GRPCErrors returns a Classifier for a splitter in front of gRPC (a
// grpc-go server's ServeHTTP, or an Upstream speaking HTTP/2): a response
// whose Content-Type is application/grpc counts as an error when its
// grpc-status is one of codes (DefaultGRPCErrorCodes when none are given)
// or is missing or unreadable (the call broke before its status). Other
// responses are classified by HTTPErrors, so one splitter can front gRPC
// and plain HTTP alike.
func GRPCErrors(codes ...GRPCCode) Classifier {
	if len(codes) == 0 {
		codes = DefaultGRPCErrorCodes()
	}
	var bad [GRPCUnauthenticated + 1]bool
	unknownBad := false
	for _, c := range codes {
		if c < GRPCCode(len(bad)) {
			bad[c] = true
		} else {
			unknownBad = true
		}
	}
	return func(r Response) bool {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			return HTTPErrors(r)
		}
		v, ok := r.Header["Grpc-Status"]
		if !ok {
			v, ok = r.Header[http.TrailerPrefix+"Grpc-Status"]
		}
		if !ok || len(v) == 0 {
			return true
		}
		c, err := strconv.ParseUint(v[0], 10, 32)
		switch {
		case err != nil:
			return true
		case c < uint64(len(bad)):
			return bad[c]
		}
		return unknownBad
	}
}
