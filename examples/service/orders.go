package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/batonhq/baton/flags"
)

// app is what the handlers use.
type app struct {
	db    *sql.DB
	flags *flags.Store
}

// generations are the service's handlers, oldest first. A release's
// binary carries its own handler and the previous release's, so that its
// canary compares them in one process; the old one is retired (the canary
// at 100%) before a contract drops what it uses, which rollout checks.
var generations = []struct {
	version string
	handler func(*app) http.Handler
}{
	{"v1", (*app).ordersV1},
	{"v2", (*app).ordersV2},
	{"v3", (*app).ordersV3},
}

// handlers returns the stable side (the previous release's handler) and
// the canary side (this release's) for version.
func (a *app) handlers(version string) (stable, canary http.Handler) {
	i := slices.IndexFunc(generations, func(g struct {
		version string
		handler func(*app) http.Handler
	}) bool {
		return g.version == version
	})
	if i < 0 {
		i = len(generations) - 1 // a development build is the newest code
	}
	return generations[max(i-1, 0)].handler(a), generations[i].handler(a)
}

// ordersV1 stores the customer's name in orders.customer.
func (a *app) ordersV1() http.Handler {
	return a.orders("v1", func(r *http.Request) bool { return false })
}

// ordersV2 stores it in orders.buyer, the column migration
// rename_customer adds (the migration's triggers keep customer in step for
// v1 while both run), and reads buyer for the users the read-buyer flag
// selects, once the backfill has filled it.
func (a *app) ordersV2() http.Handler {
	return a.orders("v2", a.readsBuyer)
}

func (a *app) readsBuyer(r *http.Request) bool {
	// Every request needs a key: a percentage rollout serves its default
	// to a request without one, and after the contract the default (the
	// old column) is gone.
	key := r.Header.Get("X-User")
	if key == "" {
		key = "anonymous"
	}
	return a.flags.Bool("read-buyer", flags.EvalContext{TargetingKey: key}, false)
}

// orders serves POST /orders (form customer=...) and GET /orders?id=N.
// From v2 on, writes go to buyer.
func (a *app) orders(v string, readBuyer func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Handler", v)
		ctx := r.Context()
		switch r.Method {
		case http.MethodPost:
			col := "buyer"
			if v == "v1" {
				col = "customer"
			}
			res, err := a.db.ExecContext(ctx, `INSERT INTO orders (`+col+`) VALUES (?)`, r.FormValue("customer"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			id, _ := res.LastInsertId()
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": id})
		case http.MethodGet:
			id, err := strconv.Atoi(r.URL.Query().Get("id"))
			if err != nil {
				http.Error(w, "id: want a number", http.StatusBadRequest)
				return
			}
			col := "customer"
			if readBuyer(r) {
				col = "buyer"
			}
			var name sql.NullString
			err = a.db.QueryRowContext(ctx, `SELECT `+col+` FROM orders WHERE id = ?`, id).Scan(&name)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "customer": name.String, "served_by": pid()})
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
	})
}
