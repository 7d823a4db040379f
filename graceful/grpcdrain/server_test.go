package grpcdrain_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/graceful/grpcdrain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of these tests; the drains have a deadline far
// beyond it.
const wait = 10 * time.Second

// drainService is a test service: Unary answers whether its context is
// drain-aware, Ticks streams until the process drains.
type drainService struct{}

var drainDesc = grpc.ServiceDesc{
	ServiceName: "baton.test.Drain",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Unary", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) {
			if graceful.Draining(ctx) == nil {
				return wrapperspb.String("not drain-aware"), nil
			}
			return wrapperspb.String("drain-aware"), nil
		}
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/baton.test.Drain/Unary"}, h)
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Ticks", ServerStreams: true, Handler: func(_ any, stream grpc.ServerStream) error {
		if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			return err
		}
		if err := stream.SendMsg(wrapperspb.String("tick")); err != nil {
			return err
		}
		select {
		case <-graceful.Draining(stream.Context()):
			return nil // the client reopens the stream elsewhere
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}}},
}

var ticksDesc = &drainDesc.Streams[0]

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts an Upgrader with a grpcdrain Server and a client of it.
func serve(t *testing.T, logs io.Writer) (*graceful.Upgrader, *grpcdrain.Server, *grpc.ClientConn) {
	t.Helper()
	u, err := graceful.New(graceful.Options{DrainTimeout: time.Minute, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := grpcdrain.New(u, grpcdrain.Options{Register: func(gs *grpc.Server) { gs.RegisterService(&drainDesc, drainService{}) }})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		u.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Serve still running %s after Close", wait)
		}
	})
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return u, s, cc
}

func unary(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, "/baton.test.Drain/Unary", wrapperspb.String("?"), out, opts...)
	return out.GetValue(), err
}

// Handlers see the drain through graceful.Draining; a stream told to
// finish ends with OK; a health Watch says NOT_SERVING and ends; the drain
// waits for GracefulStop and ends as soon as the streams are done, with
// nothing forced.
func TestDrainTellsHandlersAndHealth(t *testing.T) {
	var logs lockedBuffer
	u, _, cc := serve(t, &logs)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if got, err := unary(ctx, cc); err != nil || got != "drain-aware" {
		t.Fatalf("unary: %q %v, want a drain-aware context", got, err)
	}
	stream, err := cc.NewStream(ctx, ticksDesc, "/baton.test.Drain/Ticks")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(wrapperspb.String("go")); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != nil {
		t.Fatal(err)
	}
	hc := healthpb.NewHealthClient(cc)
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Check before the drain: %v %v", r, err)
	}
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Watch before the drain: %v %v", r, err)
	}

	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	if err := stream.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("stream during the drain: %v, want its end with OK", err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health Watch during the drain: %v %v, want NOT_SERVING", r, err)
	}
	if _, err := watch.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("health Watch after NOT_SERVING: %v, want its end with OK", err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatalf("the drain still waited %s after the streams ended", wait)
	}
	var ev struct {
		Msg    string
		Forced int
		Took   time.Duration
	}
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "drained" {
			found = true
			break
		}
	}
	if !found || ev.Forced != 0 || ev.Took <= 0 {
		t.Errorf("drained event %+v (found %v), want nothing forced and a positive duration:\n%s", ev, found, logs.String())
	}
}

// After GracefulStop the Server serves again on Resume, with a new
// grpc.Server: an RPC waiting for a connection meanwhile is answered.
func TestResumeServesAgain(t *testing.T) {
	_, s, cc := serve(t, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := unary(ctx, cc); err != nil {
		t.Fatal(err)
	}
	s.GracefulStop()
	if _, err := unary(ctx, cc, grpc.WaitForReady(false)); status.Code(err) != codes.Unavailable {
		t.Fatalf("unary while stopped: %v, want Unavailable", err)
	}
	answered := make(chan error, 1)
	go func() {
		_, err := unary(ctx, cc, grpc.WaitForReady(true))
		answered <- err
	}()
	s.Resume()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("unary after Resume: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("no answer %s after Resume", wait)
	}
}

// New refuses a Server without services.
func TestNewNeedsRegister(t *testing.T) {
	u, err := graceful.New(graceful.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := grpcdrain.New(u, grpcdrain.Options{}); err == nil || !strings.Contains(err.Error(), "Options.Register") {
		t.Fatalf("New without Register: %v", err)
	}
	var _ graceful.Resumable = (*grpcdrain.Server)(nil)
}
