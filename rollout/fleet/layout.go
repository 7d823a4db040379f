package fleet

// DefaultNamespace is the key prefix of a fleet when Options.Namespace is
// empty.
const DefaultNamespace = "baton"

// The key layout under a namespace ns. Every key the fleet writes is one
// of these, so an operator can read the fleet with etcdctl get --prefix
// ns/ or a SELECT on the PostgreSQL engine's kv table:
//
//	ns/members/<member>                membership record (JSON), under the member's lease
//	ns/elections/<election>            the driver's election ("driver" unless told)
//	ns/rollouts/<rollout>              rollout state, written by the leader only, fenced
//	ns/commands/<rollout>/<command>    an operator command, under the sender's lease,
//	                                   answered in place by the driver (fenced)
//	ns/console                         the view of the rollout the driver drives
//	                                   (rollout.StatusView), written by the leader, fenced
//
//	ns/desired/<member>                what the leader wants member to run (Desired),
//	                                   fenced, no lease
//	ns/observed/<member>               what member's live process runs (Observed), under
//	                                   that process's lease
//	ns/applied/<member>/<document>     what member has put in force of ns/shared/<document>
//	                                   (Applied), under its lease
//
// Later layers add their own prefixes beside these (shared canary weights
// and flag documents, metric snapshots); Layout reserves them so two
// layers never collide:
//
//	ns/shared/<document>   ns/metrics/<member>
//
// The zero value has no namespace and makes invalid keys; use NewLayout.
type Layout struct{ ns string }

// NewLayout returns the layout under ns (DefaultNamespace if empty).
func NewLayout(ns string) Layout {
	if ns == "" {
		ns = DefaultNamespace
	}
	return Layout{ns: ns}
}

// Namespace is the layout's root.
func (l Layout) Namespace() string { return l.ns }

// Members is the prefix of the membership records.
func (l Layout) Members() string { return l.ns + "/members/" }

// Member is the key of one member's record.
func (l Layout) Member(id string) string { return l.Members() + id }

// Election is the key of an election.
func (l Layout) Election(name string) string { return l.ns + "/elections/" + name }

// Rollouts is the prefix of the rollout states.
func (l Layout) Rollouts() string { return l.ns + "/rollouts/" }

// Rollout is the key of one rollout's state.
func (l Layout) Rollout(id string) string { return l.Rollouts() + id }

// Commands is the prefix of one rollout's pending commands.
func (l Layout) Commands(rollout string) string { return l.ns + "/commands/" + rollout + "/" }

// Console is the key of the view the driver publishes of the rollout it
// drives, which every member's console serves (Member.Remote).
func (l Layout) Console() string { return l.ns + "/console" }

// Desired is the key of the state the leader wants member to run.
func (l Layout) Desired(member string) string { return l.ns + "/desired/" + member }

// Observed is the key of the state member reports it runs.
func (l Layout) Observed(member string) string { return l.ns + "/observed/" + member }

// Shared is the key of a document every member applies (a canary weight, a
// flag configuration).
func (l Layout) Shared(name string) string { return l.ns + "/shared/" + name }

// Metrics is the key of member's metric snapshot.
func (l Layout) Metrics(member string) string { return l.ns + "/metrics/" + member }

// AppliedReports is the prefix of every member's Applied reports.
func (l Layout) AppliedReports() string { return l.ns + "/applied/" }

// Applied is the key of member's report of what it has put in force of
// the shared document (the name given to Shared).
func (l Layout) Applied(member, document string) string {
	return l.AppliedReports() + member + "/" + document
}
