package readme

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// What the README's snippets take from the code around them.
var (
	ctx      context.Context
	h        http.Handler
	v1, v2   http.Handler
	pingDB   func(context.Context) error
	log      *slog.Logger
	userID   string
	db       *sql.DB
	dir      string
	store    rollout.Store
	version  string
	up       *bind.Upgrader
	bindings func(*rollout.Release) (rollout.Bindings, error)
)

// This keeps the stand-ins in use for linters; the snippets, compiled
// through an overlay, are their real users.
var _ = []any{ctx, h, v1, v2, pingDB, log, userID, db, dir, store, version, up, bindings}
