package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// pass is the SQL of one table's backfill pass, built once.
type pass struct {
	table string
	key   []string
	// set is the SET list of the batch UPDATE, need the condition "this
	// row still needs filling".
	set, need string
}

// newPass builds the batch UPDATE shared by the Transforms on table.
//
// Where the dialect backfills set-based (PostgreSQL), a batch sets the new
// columns with the same Up expressions directly, skipping the trigger:
// the session has baton.backfill=on, which the trigger's WHEN clause
// skips, so it is one set-based statement instead of a PL/pgSQL call per
// row. Elsewhere a batch is a no-op UPDATE (old = old) of the rows still
// to fill: the UPDATE trigger derives the new columns. Either way backfill
// and live writes share one definition of the mapping. Transforms that
// sync in the application have no trigger and are set directly.
func (r *Runner) newPass(table string, ops []*opPlan) *pass {
	q := r.d.quote
	tq := q(table)
	var sets, needs []string
	touch := ""
	setBased := r.im.caps().setBased
	for _, o := range ops {
		nulls := make([]string, len(o.sync.newCols))
		for j, c := range o.sync.newCols {
			nulls[j] = tq + "." + q(c) + " IS NULL"
		}
		need := "(" + strings.Join(nulls, " AND ") + ")"
		needs = append(needs, need)
		if !setBased && o.t.Sync == SyncTriggers {
			if touch == "" {
				touch = q(o.sync.oldCols[0]) + " = " + q(o.sync.oldCols[0])
			}
			continue
		}
		for _, c := range o.sync.newCols {
			if len(ops) == 1 {
				sets = append(sets, q(c)+" = "+o.sync.upTable[c])
			} else {
				sets = append(sets, q(c)+" = CASE WHEN "+need+" THEN "+o.sync.upTable[c]+" ELSE "+tq+"."+q(c)+" END")
			}
		}
	}
	if touch != "" {
		sets = append([]string{touch}, sets...)
	}
	return &pass{table: table, key: ops[0].saved.Key, set: strings.Join(sets, ", "), need: "(" + strings.Join(needs, " OR ") + ")"}
}

// batchResult is what one batch did.
type batchResult struct {
	last            []any // the new checkpoint
	visited, filled int64
	done            bool
}

// batch runs one batch transaction: the next size keys after the
// checkpoint (up to the pass's last key), their UPDATE, and the checkpoint
// itself, which commits with its batch and only while the runner lock is
// held (else ErrLocked, and nothing of the batch commits).
func (r *Runner) batch(ctx context.Context, c *sql.Conn, b *pass, cp *checkpoint, size int) (res batchResult, err error) {
	tx, err := r.im.beginBatch(ctx, c)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if r.im.caps().setBased {
		res, err = r.setBatch(ctx, tx, b, cp, size)
	} else {
		res, err = r.touchBatch(ctx, tx, b, cp, size)
	}
	if err != nil {
		return res, err
	}
	if res.visited == 0 {
		res.last, res.done = cp.max, true
	}
	if !res.done {
		res.done = keyEqual(res.last, cp.max)
	}
	enc, err := encodeKey(res.last)
	if err != nil {
		return res, err
	}
	done := 0
	if res.done {
		done = 1
	}
	l := r.lock
	cond, cargs := "1 = 1", []any(nil)
	if l != nil {
		cond, cargs = l.cond, l.args
	}
	up, err := tx.ExecContext(ctx, r.d.rebind(`UPDATE `+r.t.backfill+` SET last_key = ?, rows_done = rows_done + ?, done = ?, updated_ms = `+r.im.nowMS()+
		` WHERE migration = ? AND op = ? AND `+cond), append([]any{enc, res.visited, done, r.m.Name, cp.op}, cargs...)...)
	if err != nil {
		return res, err
	}
	if n, _ := up.RowsAffected(); n != 1 {
		return res, fmt.Errorf("%w: the batch was not committed: runner lock no longer held (or the checkpoint is gone)", ErrLocked)
	}
	return res, tx.Commit()
}

// bounds is the WHERE condition "after the checkpoint, up to the pass's
// last key" over the table's key columns prefixed by qual.
func (r *Runner) bounds(b *pass, cp *checkpoint, qual string) (string, []any) {
	upper, args := keyCompare(r.im, qual, b.key, "<=", cp.max)
	if cp.last == nil {
		return upper, args
	}
	lower, largs := keyCompare(r.im, qual, b.key, ">", cp.last)
	return lower + " AND " + upper, append(largs, args...)
}

// setBatch is one set-based batch statement: pick the next keys, set the
// new columns, report the last key and the counts. A row a writer changed
// meanwhile is re-checked by PostgreSQL (EvalPlanQual) and skipped if the
// trigger already filled it. The UPDATE scans the key range (an index
// range scan) rather than joining the picked keys, which halves its cost.
func (r *Runner) setBatch(ctx context.Context, tx queryer, b *pass, cp *checkpoint, size int) (batchResult, error) {
	q := r.d.quote
	tq := q(b.table)
	keys := keyOrder(r.im, "", b.key, false)
	where, args := r.bounds(b, cp, "")
	uwhere, uargs := "TRUE", []any(nil)
	if cp.last != nil {
		uwhere, uargs = keyCompare(r.im, tq+".", b.key, ">", cp.last)
	}
	last := keyOrder(r.im, tq+".", b.key, false)
	if len(b.key) > 1 {
		last = "(" + last + ")"
	}
	stmt := `WITH b AS (SELECT ` + keys + ` FROM ` + tq + ` WHERE ` + where + ` ORDER BY ` + keys + ` LIMIT ?),
l AS (SELECT ` + keys + ` FROM b ORDER BY ` + keyOrder(r.im, "", b.key, true) + ` LIMIT 1),
u AS (UPDATE ` + tq + ` SET ` + b.set + ` WHERE ` + uwhere + ` AND ` + last + ` <= (SELECT ` + keys + ` FROM l) AND ` + b.need + ` RETURNING 1)
SELECT ` + keyOrder(r.im, "l.", b.key, false) + `, (SELECT count(*) FROM b), (SELECT count(*) FROM u) FROM l`
	args = append(append(args, size), uargs...)
	vals, ptrs := scanTargets(len(b.key))
	var res batchResult
	err := tx.QueryRowContext(ctx, r.d.rebind(stmt), args...).Scan(append(ptrs, &res.visited, &res.filled)...)
	if err == sql.ErrNoRows {
		return batchResult{}, nil
	}
	res.last = normalizeKey(vals)
	return res, err
}

// touchBatch finds the last of the next keys (and how many there are),
// then runs the no-op UPDATE over them.
func (r *Runner) touchBatch(ctx context.Context, tx queryer, b *pass, cp *checkpoint, size int) (batchResult, error) {
	q := r.d.quote
	tq := q(b.table)
	keys := keyOrder(r.im, "", b.key, false)
	where, args := r.bounds(b, cp, "")
	stmt := `SELECT ` + keys + `, COUNT(*) OVER () FROM (SELECT ` + keys + ` FROM ` + tq + ` WHERE ` + where + ` ORDER BY ` + keys + ` LIMIT ?) s ORDER BY ` + keyOrder(r.im, "", b.key, true) + ` LIMIT 1`
	vals, ptrs := scanTargets(len(b.key))
	var res batchResult
	err := tx.QueryRowContext(ctx, r.d.rebind(stmt), append(args, size)...).Scan(append(ptrs, &res.visited)...)
	if err == sql.ErrNoRows {
		return batchResult{}, nil
	}
	if err != nil {
		return res, err
	}
	res.last = normalizeKey(vals)
	upper, uargs := keyCompare(r.im, tq+".", b.key, "<=", res.last)
	uwhere := upper
	if cp.last != nil {
		lower, largs := keyCompare(r.im, tq+".", b.key, ">", cp.last)
		uwhere, uargs = lower+" AND "+upper, append(largs, uargs...)
	}
	out, err := tx.ExecContext(ctx, r.d.rebind(`UPDATE `+tq+` SET `+b.set+` WHERE `+uwhere+` AND `+b.need), uargs...)
	if err != nil {
		return res, err
	}
	res.filled, _ = out.RowsAffected()
	return res, nil
}

func scanTargets(n int) ([]any, []any) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, ptrs
}

// keyEqual compares two keys as encoded.
func keyEqual(a, b []any) bool {
	x, err1 := encodeKey(a)
	y, err2 := encodeKey(b)
	return err1 == nil && err2 == nil && x == y
}
