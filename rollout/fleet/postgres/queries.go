package postgres

import (
	"strconv"
	"strings"
	"time"
)

// queries are the engine's SQL statements with the schema spliced in. The
// schema is checked against schemaPattern and quoted; every value travels
// as a parameter.
type queries struct {
	setup []string

	get, revision, list, bump, current, del, put, event           string
	leader, leaseAlive, compact, compacted, compactedRev, events  string
	grant, keepAlive, anyExpired, expire, revokeLease, dropLeased string
	prune, look, insertElection, takeElection, setValue, resign   string
	leaderValue, channel, present, txIdle                         string
}

func newQueries(schema string, txIdle time.Duration) queries {
	s := `"` + schema + `"`
	r := strings.NewReplacer("S.", s+".", "{S}", s)
	f := r.Replace
	q := queries{channel: schema + "_fleet"}
	q.txIdle = "SET LOCAL idle_in_transaction_session_timeout = " + strconv.FormatInt(txIdle.Milliseconds(), 10)
	q.setup = []string{
		f(`CREATE SCHEMA IF NOT EXISTS {S}`),
		f(`CREATE TABLE IF NOT EXISTS S.meta (id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL, compacted bigint NOT NULL)`),
		f(`INSERT INTO S.meta (id, revision, compacted) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING`),
		f(`CREATE TABLE IF NOT EXISTS S.leases (id bigserial PRIMARY KEY, ttl_ms bigint NOT NULL, expires_at timestamptz NOT NULL)`),
		f(`CREATE TABLE IF NOT EXISTS S.kv (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL, created bigint NOT NULL, revision bigint NOT NULL, lease bigint)`),
		f(`CREATE INDEX IF NOT EXISTS kv_lease ON S.kv (lease) WHERE lease IS NOT NULL`),
		f(`CREATE TABLE IF NOT EXISTS S.events (revision bigint NOT NULL, key text COLLATE "C" NOT NULL, value bytea, deleted boolean NOT NULL, created bigint, lease bigint, at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (revision, key))`),
		f(`CREATE TABLE IF NOT EXISTS S.elections (name text COLLATE "C" PRIMARY KEY, term bigint NOT NULL, lease bigint, value bytea)`),
	}
	q.present = `SELECT count(*) = 5 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename IN ('meta', 'leases', 'kv', 'events', 'elections')`
	q.get = f(`SELECT value, created, revision, lease FROM S.kv WHERE key = $1`)
	q.revision = f(`SELECT revision FROM S.meta WHERE id = 1`)
	q.list = f(`SELECT key, value, created, revision, lease FROM S.kv WHERE key >= $1 AND key < $2 ORDER BY key`)
	// bump also queues the notification of the new revision: PostgreSQL
	// delivers it at commit, and drops it with a rollback.
	q.bump = f(`WITH r AS (UPDATE S.meta SET revision = revision + 1 WHERE id = 1 RETURNING revision)
		SELECT revision, pg_notify('` + q.channel + `', revision::text) FROM r`)
	q.current = f(`SELECT revision FROM S.kv WHERE key = $1`)
	q.del = f(`WITH d AS (DELETE FROM S.kv WHERE key = $1 RETURNING key)
		INSERT INTO S.events (revision, key, deleted) SELECT $2, key, true FROM d`)
	q.put = f(`WITH p AS (INSERT INTO S.kv (key, value, created, revision, lease) VALUES ($1, $2, $3, $3, $4)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = EXCLUDED.lease RETURNING key, value, created, lease)
		INSERT INTO S.events (revision, key, value, deleted, created, lease) SELECT $3, key, value, false, created, lease FROM p`)
	q.event = f(`INSERT INTO S.events (revision, key, value, deleted, created, lease) VALUES ($1, $2, $3, $4, $5, $6)`)
	q.leader = f(`SELECT e.term, e.lease, COALESCE(l.expires_at > clock_timestamp(), false)
		FROM S.elections e LEFT JOIN S.leases l ON l.id = e.lease WHERE e.name = $1`)
	q.leaseAlive = f(`SELECT expires_at > clock_timestamp() FROM S.leases WHERE id = $1`)
	q.compact = f(`DELETE FROM S.events WHERE revision <= $1`)
	q.compacted = f(`UPDATE S.meta SET compacted = GREATEST(compacted, $1) WHERE id = 1`)
	q.compactedRev = f(`SELECT compacted, revision FROM S.meta WHERE id = 1`)
	q.events = f(`SELECT revision, key, value, deleted, created, lease FROM S.events
		WHERE revision > $1 AND key >= $2 AND key < $3 ORDER BY revision, key LIMIT $4`)
	q.grant = f(`INSERT INTO S.leases (ttl_ms, expires_at) VALUES ($1::bigint, clock_timestamp() + $1::bigint * interval '1 millisecond') RETURNING id`)
	q.keepAlive = f(`UPDATE S.leases SET expires_at = clock_timestamp() + ttl_ms * interval '1 millisecond'
		WHERE id = $1 AND expires_at > clock_timestamp()`)
	q.anyExpired = f(`SELECT EXISTS (SELECT 1 FROM S.leases WHERE expires_at <= clock_timestamp())`)
	q.expire = f(`DELETE FROM S.leases WHERE expires_at <= clock_timestamp() RETURNING id`)
	q.revokeLease = f(`DELETE FROM S.leases WHERE id = $1`)
	q.dropLeased = f(`DELETE FROM S.kv WHERE lease = $1 RETURNING key`)
	q.prune = f(`WITH d AS (DELETE FROM S.events WHERE at < clock_timestamp() - $1::bigint * interval '1 millisecond' RETURNING revision)
		UPDATE S.meta SET compacted = GREATEST(compacted, (SELECT COALESCE(MAX(revision), 0) FROM d)) WHERE id = 1`)
	q.look = f(`SELECT e.term, e.lease, COALESCE(l.expires_at > clock_timestamp(), false),
		COALESCE(GREATEST(0, EXTRACT(EPOCH FROM l.expires_at - clock_timestamp()) * 1000), 0)::bigint
		FROM S.elections e LEFT JOIN S.leases l ON l.id = e.lease WHERE e.name = $1`)
	q.insertElection = f(`INSERT INTO S.elections (name, term, lease, value) VALUES ($1, 1, $2, $3)`)
	q.takeElection = f(`UPDATE S.elections SET term = term + 1, lease = $2, value = $3 WHERE name = $1 RETURNING term`)
	q.setValue = f(`UPDATE S.elections SET value = $2 WHERE name = $1`)
	q.resign = f(`UPDATE S.elections SET lease = NULL WHERE name = $1 AND term = $2 AND lease = $3`)
	q.leaderValue = f(`SELECT e.value, e.term FROM S.elections e JOIN S.leases l ON l.id = e.lease
		WHERE e.name = $1 AND l.expires_at > clock_timestamp()`)
	return q
}
