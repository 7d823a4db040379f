package main

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// The service ships its migrations and its default flags with its binary:
// the release that needs a migration runs it, from its own process (the
// manifest puts it after the upgrade), so an old binary never needs to
// know a newer migration.
//
//go:embed migrations/*.yaml flags.yaml
var files embed.FS

const renameCustomer = "rename_customer"

func migrationRunners(db *sql.DB, log *slog.Logger) (bind.MigrateRunners, error) {
	ents, err := files.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	runners := bind.MigrateRunners{}
	for _, e := range ents {
		data, err := files.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		m, err := migrate.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("migrations/%s: %w", e.Name(), err)
		}
		r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: stateTables, InstanceTTL: 3 * time.Second, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("migrations/%s: %w", e.Name(), err)
		}
		runners[m.Name] = r
	}
	return runners, nil
}

// writeDefaultFlags writes the built-in flag file at path unless one is
// there (an operator's edits win).
func writeDefaultFlags(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	data, err := files.ReadFile("flags.yaml")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Pass margins sized for this template's short steps (see analyzers).
const (
	passErrorMargin   = 0.05
	passLatencyMargin = 0.5
)

// analyzers are what the release manifests name. A fresh set per release:
// a canary analyzer's alpha budget belongs to one rollout.
func analyzers(split *canary.Splitter, db *sql.DB) map[string]rollout.Analyzer {
	return map[string]rollout.Analyzer{
		// No 5xx from either variant: a bake's check.
		"errors": errorsAnalyzer{split},
		// Canary against stable: error rate only, and an absolute p99
		// (a release that writes through the migration's triggers is a
		// little slower by design).
		//
		// A Pass needs evidence that the canary is no worse than stable by
		// more than the pass margins. The defaults (0.5 points of errors,
		// 5% of latency) take about a thousand canary requests to prove;
		// this template's steps last seconds at a few dozen requests per
		// second, so its margins are wider. With minutes per step and real
		// traffic, drop PassErrorMargin and PassLatencyMargin to use the
		// defaults.
		"canary-errors": &bind.CanaryAnalyzer{Splitter: split, Options: canary.AnalysisOptions{
			SkipLatency: true, MaxP99: time.Second, MinSamples: 50, PassErrorMargin: passErrorMargin}},
		// Canary against stable: errors and latency.
		"canary": &bind.CanaryAnalyzer{Splitter: split, Options: canary.AnalysisOptions{
			MinSamples: 50, PassErrorMargin: passErrorMargin, PassLatencyMargin: passLatencyMargin}},
		// Every row agrees between customer and buyer (the dual write).
		"rows-agree": rowsAgree{db},
	}
}

type errorsAnalyzer struct{ s *canary.Splitter }

func (a errorsAnalyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	w := a.s.Metrics().Snapshot().All()
	st, ca := w.Of(canary.Stable), w.Of(canary.Canary)
	n, e := st.Requests+ca.Requests, st.Errors+ca.Errors
	switch {
	case n == 0:
		return rollout.Inconclusive, "no request served yet", nil
	case e > 0:
		return rollout.Fail, fmt.Sprintf("%d of %d requests failed", e, n), nil
	}
	return rollout.Pass, fmt.Sprintf("0 errors in %d requests", n), nil
}

type rowsAgree struct{ db *sql.DB }

func (c rowsAgree) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	var bad, total int
	err := c.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN customer IS NOT buyer THEN 1 ELSE 0 END), 0) FROM orders`).Scan(&total, &bad)
	if err != nil {
		return rollout.Inconclusive, "", err
	}
	if bad > 0 {
		return rollout.Fail, fmt.Sprintf("%d of %d rows disagree between customer and buyer", bad, total), nil
	}
	return rollout.Pass, fmt.Sprintf("all %d rows agree between customer and buyer", total), nil
}
