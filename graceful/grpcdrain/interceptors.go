package grpcdrain

import (
	"context"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/graceful"
)

// UnaryServerInterceptor makes graceful.Draining work in unary handlers of
// a grpc.Server that serves on u's listeners. Servers made by New have it.
func UnaryServerInterceptor(u *graceful.Upgrader) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(u.DrainContext(ctx), req)
	}
}

// StreamServerInterceptor makes graceful.Draining work in stream handlers:
// a handler that selects on Draining(stream.Context()) and returns ends
// its stream with the status it chooses (OK, say), and the client reopens
// it on a connection to the new process. Servers made by New have it; it
// also ends the health service's Watch streams once they have told the
// client NOT_SERVING in a drain, so that they do not hold GracefulStop
// until the drain deadline.
func StreamServerInterceptor(u *graceful.Upgrader) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := u.DrainContext(ss.Context())
		if info.FullMethod != healthpb.Health_Watch_FullMethodName {
			return handler(srv, &drainStream{ServerStream: ss, ctx: ctx})
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := &watchStream{drainStream: drainStream{ServerStream: ss, ctx: ctx}, cancel: cancel}
		err := handler(srv, w)
		if w.ended {
			return nil
		}
		return err
	}
}

// drainStream carries the drain-aware context to the handler.
type drainStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *drainStream) Context() context.Context { return s.ctx }

// watchStream ends a health Watch after it sent NOT_SERVING during a drain.
type watchStream struct {
	drainStream
	cancel context.CancelFunc
	ended  bool // ended by the drain, not by the client
}

func (s *watchStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if r, ok := m.(*healthpb.HealthCheckResponse); ok && err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
		select {
		case <-graceful.Draining(s.ctx):
			s.ended = true
			s.cancel()
		default:
		}
	}
	return err
}
