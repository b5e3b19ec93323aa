package localcloud

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// startCallerIPServices runs two "what is my IP" services on loopback, as
// checkip.amazonaws.com and api.ipify.org are on the internet: each
// answers with the address the request came from, in plain text (from
// this machine, 127.0.0.1: the address the cloud's relays see, and so the
// one a security group must let in). kafkaup is pointed at them with
// KAFKAUP_CALLER_IP_URLS (Env), so a create needs no --allow-cidr.
func (c *Cloud) startCallerIPServices() error {
	for n := 0; n < 2; n++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("localcloud: caller-IP service: %w", err)
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			c.logf("localcloud: caller-IP service %d: %s asked", n+1, host)
			fmt.Fprintln(w, host)
		})}
		go srv.Serve(ln)
		c.ipServers = append(c.ipServers, srv)
		c.CallerIPURLs = append(c.CallerIPURLs, "http://"+ln.Addr().String()+"/")
	}
	return nil
}
