package main

import "net/http"

// ordersV3 is release v3's handler: v2's, with the receipt header a
// client asked for.
func (a *app) ordersV3() http.Handler {
	h := a.orders("v3", a.readsBuyer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Receipt", "itemized")
		h.ServeHTTP(w, r)
	})
}
