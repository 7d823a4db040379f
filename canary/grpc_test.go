package canary_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/batonhq/baton/canary"
)

// health is a grpc.health.v1 service that fails every failEvery-th call
// with code.
type health struct {
	healthpb.UnimplementedHealthServer
	failEvery int64
	code      codes.Code
	calls     atomic.Int64
}

func (h *health) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.failEvery > 0 && h.calls.Add(1)%h.failEvery == 0 {
		return nil, status.Error(h.code, "injected")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// grpcCanary fronts two real grpc-go servers with a splitter at 10%:
// stable through grpc.Server.ServeHTTP in this process, the canary
// through an Upstream speaking cleartext HTTP/2 to a grpc.Server on its
// own listener. It makes calls real gRPC calls through the splitter and
// returns the controller after one evaluation.
func grpcCanary(t *testing.T, code codes.Code, calls int) (*canary.Controller, int) {
	t.Helper()
	stable := grpc.NewServer()
	healthpb.RegisterHealthServer(stable, &health{})
	t.Cleanup(stable.Stop)

	cnry := grpc.NewServer()
	healthpb.RegisterHealthServer(cnry, &health{failEvery: 20, code: code}) // 5% of calls
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cnry.Serve(cln) }()
	t.Cleanup(cnry.Stop)
	up, err := canary.NewUpstream(canary.UpstreamOptions{Address: cln.Addr().String(), H2C: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })

	split := newSplitter(t, canary.Options{Stable: stable, Canary: up, Classify: canary.GRPCErrors(),
		Window: time.Minute, Resolution: 100 * time.Millisecond})
	ctl, err := canary.NewController(canary.ControllerOptions{
		Splitter: split, Steps: []canary.Step{{Weight: 1000, MinDuration: time.Hour}},
		// Two processes' worth of transports on one busy machine: the
		// error rate is what this test is about.
		Analysis: canary.AnalysisOptions{SkipLatency: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: split, ReadHeaderTimeout: 5 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	// The first 100 ms interval holds the weight change and is left out
	// of the analysis; the calls below take longer than that.
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	failed := 0
	for range calls {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			if status.Code(err) != code {
				t.Fatalf("call failed with %v, want %s or success", err, code)
			}
			failed++
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("%d calls did not finish within a minute", calls)
	}
	if _, err := ctl.Evaluate(context.Background()); err != nil && !errors.Is(err, canary.ErrFinished) {
		t.Fatal(err)
	}
	return ctl, failed
}

func TestGRPCCanaryUnavailableRolledBack(t *testing.T) {
	ctl, failed := grpcCanary(t, codes.Unavailable, 3000)
	st := ctl.Status()
	if failed == 0 || st.Phase != canary.PhaseRolledBack || st.Weight != 0 {
		t.Fatalf("canary failing 5%% with UNAVAILABLE (%d calls failed): %s at %d (%s)", failed, st.Phase, st.Weight, st.Reason)
	}
	t.Logf("rolled back: %s", st.Reason)
}

func TestGRPCCanaryNotFoundKept(t *testing.T) {
	ctl, failed := grpcCanary(t, codes.NotFound, 3000)
	st := ctl.Status()
	if failed == 0 || st.Phase != canary.PhaseRunning || st.Weight != 1000 {
		t.Fatalf("canary answering 5%% NOT_FOUND (%d calls): %s at %d (%s)", failed, st.Phase, st.Weight, st.Reason)
	}
	if c := st.Last.Check("error rate"); c.Verdict == canary.Fail || st.Canary.Errors != 0 || st.Canary.Requests == 0 {
		t.Fatalf("NOT_FOUND counted as errors: %+v, canary %+v", c, st.Canary)
	}
}

func TestGRPCErrorsClassifier(t *testing.T) {
	grpcResp := func(kv ...string) canary.Response {
		h := http.Header{"Content-Type": {"application/grpc+proto"}}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
		return canary.Response{Status: 200, Header: h}
	}
	def := canary.GRPCErrors()
	for _, c := range []struct {
		name string
		r    canary.Response
		want bool
	}{
		{"ok", grpcResp("Grpc-Status", "0"), false},
		{"unavailable", grpcResp("Grpc-Status", "14"), true},
		{"internal via the proxy's trailer prefix", grpcResp(http.TrailerPrefix+"Grpc-Status", "13"), true},
		{"deadline exceeded", grpcResp("Grpc-Status", "4"), true},
		{"not found", grpcResp("Grpc-Status", "5"), false},
		{"invalid argument", grpcResp("Grpc-Status", "3"), false},
		{"no status: the call broke", grpcResp(), true},
		{"unreadable status", grpcResp("Grpc-Status", "x"), true},
		{"plain HTTP 503", canary.Response{Status: 503, Header: http.Header{}}, true},
		{"plain HTTP 404", canary.Response{Status: 404, Header: http.Header{}}, false},
	} {
		if got := def(c.r); got != c.want {
			t.Errorf("%s: error = %v, want %v", c.name, got, c.want)
		}
	}
	if !canary.GRPCErrors(canary.GRPCNotFound)(grpcResp("Grpc-Status", "5")) || canary.GRPCErrors(canary.GRPCNotFound)(grpcResp("Grpc-Status", "14")) {
		t.Error("explicit codes are not the set counted")
	}
}

func TestUpstreamH2COptions(t *testing.T) {
	_, err := canary.NewUpstream(canary.UpstreamOptions{Address: "127.0.0.1:1", H2C: true, Transport: http.DefaultTransport})
	var oe *canary.OptionsError
	if !errors.As(err, &oe) || oe.Field != "H2C" {
		t.Fatalf("H2C with a custom transport: %v", err)
	}
}
