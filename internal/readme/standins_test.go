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
