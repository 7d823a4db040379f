// Command grpcserver is a small gRPC service on graceful, meant to be
// copied as a template, like examples/httpserver. Its service, baton.example.Echo,
// answers Who (unary) with the PID of the process that served it and
// streams Ticks until the process drains; it also serves grpc.health.v1.
//
//	go build -o /tmp/grpcserver ./examples/grpcserver
//	/tmp/grpcserver -addr 127.0.0.1:9090 -pidfile /tmp/grpcserver.pid -bake 30s &
//	# replace /tmp/grpcserver with a new build, then:
//	kill -HUP "$(cat /tmp/grpcserver.pid)"
//
// SIGHUP upgrades to whatever binary now stands at the path the process was
// started from. The old process sends GOAWAY at once, even while it bakes,
// so clients open their next streams on the new process; Ticks streams end
// with OK and the clients reopen them there. If the new process dies
// inside the bake window, the old one resumes with a fresh grpc.Server.
// SIGTERM drains; a second SIGTERM closes at once. Under systemd, use the
// unit of examples/systemd with this binary.
//
// The service is described by hand (grpc.ServiceDesc with protobuf's
// wrapper messages) so that the template builds without protoc; a
// generated service registers the same way in Options.Register.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/graceful/grpcdrain"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "address to listen on")
	pidfile := flag.String("pidfile", "", "file to hold the PID of the serving process")
	addrFile := flag.String("addrfile", "", "file to receive the bound address (useful with -addr 127.0.0.1:0)")
	tick := flag.Duration("tick", 100*time.Millisecond, "interval between Ticks messages")
	upgradeTimeout := flag.Duration("upgrade-timeout", graceful.DefaultUpgradeTimeout, "how long a new process may take to become ready")
	bake := flag.Duration("bake", 0, "how long the old process stays warm after a handoff")
	drain := flag.Duration("drain-timeout", graceful.DefaultDrainTimeout, "how long a drain may take before connections are closed")
	drainDelay := flag.Duration("drain-delay", 0, "how long to stay not-ready before draining on SIGTERM")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("pid", os.Getpid())
	if err := run(log, *addr, *addrFile, *pidfile, *tick, *upgradeTimeout, *bake, *drain, *drainDelay); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, addr, addrFile, pidfile string, tick, upgradeTimeout, bake, drain, drainDelay time.Duration) error {
	upg, err := graceful.New(graceful.Options{
		UpgradeTimeout: upgradeTimeout,
		BakeWindow:     bake,
		DrainTimeout:   drain,
		DrainDelay:     drainDelay,
		PIDFile:        pidfile,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	// Inside a bake window this gives serving back to the previous
	// process, so an error below costs no RPC.
	defer upg.Close()

	ctx := context.Background()
	ln, err := upg.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if addrFile != "" {
		tmp := addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, addrFile); err != nil {
			return err
		}
	}
	svc := &echo{pid: "pid=" + strconv.Itoa(os.Getpid()), tick: tick}
	srv, err := grpcdrain.New(upg, grpcdrain.Options{
		Register: func(s *grpc.Server) { s.RegisterService(&echoDesc, svc) },
	})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := upg.Ready(ctx); err != nil {
		return err
	}
	if err := upg.Run(ctx); err != nil {
		return err
	}
	return <-served
}

// echo implements baton.example.Echo.
type echo struct {
	pid  string
	tick time.Duration
}

// Who answers with the serving process's PID.
func (e *echo) Who(ctx context.Context, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(e.pid), nil
}

// Ticks streams the PID until the client leaves or the process drains,
// when it ends the stream with OK so that the client reopens it on the new
// process.
func (e *echo) Ticks(_ *wrapperspb.StringValue, stream grpc.ServerStream) error {
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for n := 0; ; n++ {
		if err := stream.SendMsg(wrapperspb.String(fmt.Sprintf("%s tick=%d", e.pid, n))); err != nil {
			return err
		}
		select {
		case <-graceful.Draining(stream.Context()):
			return nil
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-t.C:
		}
	}
}

// echoDesc describes baton.example.Echo as protoc-gen-go-grpc would.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "baton.example.Echo",
	HandlerType: (*interface {
		Who(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
		Ticks(*wrapperspb.StringValue, grpc.ServerStream) error
	})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Who",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if ic == nil {
				return srv.(*echo).Who(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/baton.example.Echo/Who"}
			return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(*echo).Who(ctx, req.(*wrapperspb.StringValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Ticks",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(*echo).Ticks(in, stream)
		},
	}},
	Metadata: "baton/example/echo",
}
