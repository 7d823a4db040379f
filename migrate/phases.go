package migrate

// Phase is where a migration stands. The zero value, PhaseNone, means the
// migration has not been started (or its state row does not exist).
type Phase string

// The phases in order. The -ing phases are recorded before the work of a
// step and replaced when it ends, so a crashed runner leaves a phase from
// which the same call resumes.
const (
	PhaseNone        Phase = ""
	PhaseExpanding   Phase = "expanding"
	PhaseExpanded    Phase = "expanded"
	PhaseBackfilling Phase = "backfilling"
	PhaseBackfilled  Phase = "backfilled"
	PhaseReadNew     Phase = "read_new"
	PhaseCompleting  Phase = "completing"
	PhaseComplete    Phase = "complete"
	PhaseRollingBack Phase = "rolling_back"
	PhaseRolledBack  Phase = "rolled_back"
)

// ReadNew reports whether application code should read the new columns:
// true from SwitchReads on (read_new, completing, complete). Before that,
// and during and after a rollback, read the old ones.
func (p Phase) ReadNew() bool {
	return p == PhaseReadNew || p == PhaseCompleting || p == PhaseComplete
}

// WriteOld reports whether application code that syncs columns itself
// (SyncApplication) writes the old columns: until SwitchReads. From then on
// nothing reads them and Complete will drop them.
func (p Phase) WriteOld() bool { return !p.ReadNew() }

// WriteNew reports whether application code that syncs columns itself
// (SyncApplication) writes the new columns: once they exist (expanded and
// later), not before Start nor after a Rollback.
func (p Phase) WriteNew() bool {
	switch p {
	case PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete:
		return true
	}
	return false
}

// transition is one phase method: allowed from a phase in from; a phase
// in done means it already happened (the call returns nil and runs
// nothing); during is recorded before the work (unless empty) and after
// once it succeeded.
type transition struct {
	from, done    []Phase
	during, after Phase
}

// transitions is the state machine of a migration, one row per method.
var transitions = map[string]transition{
	"Start": {
		from:   []Phase{PhaseNone, PhaseExpanding, PhaseRolledBack},
		done:   []Phase{PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete},
		during: PhaseExpanding, after: PhaseExpanded,
	},
	"Backfill": {
		from:   []Phase{PhaseExpanded, PhaseBackfilling},
		done:   []Phase{PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete},
		during: PhaseBackfilling, after: PhaseBackfilled,
	},
	"SwitchReads": {
		from:  []Phase{PhaseBackfilled},
		done:  []Phase{PhaseReadNew, PhaseCompleting, PhaseComplete},
		after: PhaseReadNew,
	},
	"Complete": {
		from:   []Phase{PhaseReadNew, PhaseCompleting},
		done:   []Phase{PhaseComplete},
		during: PhaseCompleting, after: PhaseComplete,
	},
	"Rollback": {
		from:   []Phase{PhaseExpanding, PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseRollingBack},
		done:   []Phase{PhaseRolledBack, PhaseNone},
		during: PhaseRollingBack, after: PhaseRolledBack,
	},
}
