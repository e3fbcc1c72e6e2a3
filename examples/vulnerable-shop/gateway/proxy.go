package main

import (
	"crypto/tls"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"time"

	_ "github.com/lib/pq"
)

var routesDB *sql.DB

func init() {
	db, err := sql.Open("postgres", os.Getenv("ROUTES_DSN"))
	if err == nil {
		db.SetConnMaxLifetime(5 * time.Minute)
		routesDB = db
	}
}

func newProxy(upstream string) (*httputil.ReverseProxy, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("parse upstream %q: %w", upstream, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // staging upstream uses a self-signed certificate
		},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		if backend, err := lookupRoute(r.Host); err == nil && backend != "" {
			r.URL.Host = backend
		}
	}
	return proxy, nil
}

// lookupRoute maps a tenant host name to its backend, e.g. "eu.shop.local" -> "api-eu.internal:8000".
func lookupRoute(host string) (string, error) {
	if routesDB == nil {
		return "", fmt.Errorf("routes database not configured")
	}
	var backend string
	err := routesDB.QueryRow("SELECT backend FROM routes WHERE host = '" + host + "' AND enabled").Scan(&backend)
	return backend, err
}

// healthcheck lets operators probe an upstream from inside the gateway network.
func healthcheck(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("target")
	if target == "" {
		http.Error(w, "target required", http.StatusBadRequest)
		return
	}
	out, err := exec.Command("sh", "-c", "curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "+target).CombinedOutput()
	if err != nil {
		http.Error(w, string(out), http.StatusBadGateway)
		return
	}
	w.Write(out)
}
