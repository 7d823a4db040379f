package migrate

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for the zero fields of Options.
const (
	DefaultStateTablePrefix = "baton_migrate_"
	DefaultLockTimeout      = 500 * time.Millisecond
	DefaultDDLAttempts      = 20
	DefaultRetryBackoff     = 100 * time.Millisecond
	DefaultMaxRetryBackoff  = 5 * time.Second
	DefaultBatchTarget      = 50 * time.Millisecond
	DefaultBatchSize        = 2000
	DefaultMinBatchSize     = 10
	DefaultMaxBatchSize     = 50000
	DefaultInstanceTTL      = 30 * time.Second
	DefaultHeartbeat        = 5 * time.Second
	DefaultLeaseTTL         = 15 * time.Second
	DefaultLockCheck        = 250 * time.Millisecond
	DefaultCatchUpTimeout   = 30 * time.Second
	DefaultInstancePoll     = 200 * time.Millisecond
	DefaultLintMode         = LintWarn
)

// LintMode says how a Runner lints a migration at run time. The zero value
// is LintWarn.
type LintMode int

const (
	// LintWarn logs each finding (Options.Logger, level WARN) and runs the
	// migration anyway: the linter is not a parser, and a finding may be a
	// change the operator has judged safe.
	LintWarn LintMode = iota
	// LintOff does not lint.
	LintOff
	// LintRefuse makes Start and Complete refuse, with a *LintError and the
	// phase unchanged, when a finding of SeverityError concerns an operation
	// they would run; warnings are logged as with LintWarn.
	LintRefuse
)

// String returns "warn", "off" or "refuse".
func (m LintMode) String() string {
	switch m {
	case LintOff:
		return "off"
	case LintRefuse:
		return "refuse"
	}
	return "warn"
}

// Options configures a Runner. Every zero field means the documented default.
type Options struct {
	// Dialect of the database; zero detects it from the driver.
	Dialect Dialect
	// StateTablePrefix names the state tables (<prefix>migrations,
	// <prefix>backfill, <prefix>instances, <prefix>observed, <prefix>saved,
	// and on SQLite <prefix>locks and <prefix>guard; StateTables lists
	// them). Zero means DefaultStateTablePrefix.
	StateTablePrefix string
	// LockTimeout bounds how long each DDL statement waits for its lock, and
	// so how long application queries can queue behind it. MySQL rounds it
	// up to whole seconds. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// DDLAttempts is how many times a DDL statement is tried when it times
	// out on a lock. Zero means DefaultDDLAttempts.
	DDLAttempts int
	// RetryBackoff is the first pause between attempts, doubled up to
	// MaxRetryBackoff, with jitter. Zero means the defaults.
	RetryBackoff, MaxRetryBackoff time.Duration
	// OnRetry, if set, is called before each pause after a retryable DDL
	// failure (statement, attempt number from 1, error).
	OnRetry func(stmt string, attempt int, err error)

	// BatchTarget is the backfill's goal duration for one batch
	// transaction; the batch size adapts to it. Zero means DefaultBatchTarget.
	BatchTarget time.Duration
	// BatchSize is the first batch's size; Min/MaxBatchSize bound the
	// adaptation. Zero means the defaults.
	BatchSize, MinBatchSize, MaxBatchSize int
	// Throttle is a pause after each batch, leaving room to other writers
	// and to replicas. Zero means no pause.
	Throttle time.Duration
	// OnProgress, if set, is called after each committed batch, from the
	// goroutine running Backfill.
	OnProgress func(Progress)

	// InstanceTTL: an instance whose last heartbeat is older is dead for
	// the checks of Complete and Rollback. Zero means DefaultInstanceTTL.
	InstanceTTL time.Duration
	// LeaseTTL is the SQLite runner lock's lease. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LockCheck is how often the connection holding the PostgreSQL or
	// MySQL runner lock is pinged: a phase stops with ErrLocked within
	// about this long after the server ended the lock's session. Zero
	// means DefaultLockCheck.
	LockCheck time.Duration
	// CatchUpTimeout bounds how long Complete waits for live instances to
	// act on read_new (see Runner.AwaitCaughtUp). Zero means
	// DefaultCatchUpTimeout.
	CatchUpTimeout time.Duration
	// InstancePoll is how often that wait reads the registry. Zero means
	// DefaultInstancePoll.
	InstancePoll time.Duration
	// CompareVersions orders application versions (<0, 0, >0). Zero means
	// CompareVersions (dotted numeric, "v" prefix ignored).
	CompareVersions func(a, b string) int

	// LintMode says what Start and Complete do with the Lint findings of
	// the operations they are about to run (RawSQL statements, AddColumn
	// defaults). Zero means DefaultLintMode (LintWarn).
	LintMode LintMode

	// Logger receives progress and retries; nil discards.
	Logger *slog.Logger
	// MeterProvider and TracerProvider; nil means no-op.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

func (o Options) withDefaults() Options {
	if o.StateTablePrefix == "" {
		o.StateTablePrefix = DefaultStateTablePrefix
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.DDLAttempts <= 0 {
		o.DDLAttempts = DefaultDDLAttempts
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if o.BatchTarget <= 0 {
		o.BatchTarget = DefaultBatchTarget
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MinBatchSize <= 0 {
		o.MinBatchSize = DefaultMinBatchSize
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	o.BatchSize = min(max(o.BatchSize, o.MinBatchSize), o.MaxBatchSize)
	if o.InstanceTTL <= 0 {
		o.InstanceTTL = DefaultInstanceTTL
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.LockCheck <= 0 {
		o.LockCheck = DefaultLockCheck
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = DefaultCatchUpTimeout
	}
	if o.InstancePoll <= 0 {
		o.InstancePoll = DefaultInstancePoll
	}
	if o.CompareVersions == nil {
		o.CompareVersions = CompareVersions
	}
	return o
}

// CompareVersions compares dotted versions numerically part by part
// ("1.10.0" > "1.9.3"), ignoring a leading "v"; a part that is not a number
// is compared as a string, and a pre-release suffix after '-' sorts before
// the release ("2.0.0-rc1" < "2.0.0").
func CompareVersions(a, b string) int {
	a, b = strings.TrimPrefix(a, "v"), strings.TrimPrefix(b, "v")
	ac, apre, _ := strings.Cut(a, "-")
	bc, bpre, _ := strings.Cut(b, "-")
	ap, bp := strings.Split(ac, "."), strings.Split(bc, ".")
	for i := 0; i < max(len(ap), len(bp)); i++ {
		var x, y string
		if i < len(ap) {
			x = ap[i]
		}
		if i < len(bp) {
			y = bp[i]
		}
		xn, xerr := strconv.ParseUint(orZero(x), 10, 64)
		yn, yerr := strconv.ParseUint(orZero(y), 10, 64)
		if xerr == nil && yerr == nil {
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	return strings.Compare(apre, bpre)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
