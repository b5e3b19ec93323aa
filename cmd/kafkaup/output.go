package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// ui prints progress on stderr (one line per step with its duration) and
// copies it to the debug log.
type ui struct {
	mu      sync.Mutex
	out     io.Writer
	log     io.Writer
	confirm func(question string) (bool, error)
}

// Confirm asks a yes/no question on the terminal.
func (u *ui) Confirm(question string) (bool, error) { return u.confirm(question) }

func newUI(out, log io.Writer) *ui { return &ui{out: out, log: log} }

func (u *ui) Printf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	fmt.Fprintln(u.out, line)
	if u.log != nil {
		fmt.Fprintf(u.log, "%s %s\n", time.Now().Format(time.RFC3339), line)
	}
}

// notes copies the remote scripts' stderr (one line per Write) to the debug
// log, and shows the user the lines a script marks as notes: waits and
// retries that would otherwise look like a hang.
type notes struct {
	log io.Writer
	ui  *ui
}

// noteMarker starts a note line in a script's stderr (lib.sh's note).
const noteMarker = "kafkaup: note: "

func (n notes) Write(p []byte) (int, error) {
	if _, msg, ok := strings.Cut(string(p), noteMarker); ok {
		n.ui.mu.Lock()
		fmt.Fprintf(n.ui.out, "           %s\n", strings.TrimRight(msg, "\n"))
		n.ui.mu.Unlock()
	}
	return n.log.Write(p)
}

func (u *ui) StepStarted(s provision.Step) { u.Printf("%s", stepStarted(s)) }

func (u *ui) StepDone(s provision.Step, took time.Duration, err error) {
	u.Printf("%s", stepDone(s, took, err))
}

func stepStarted(s provision.Step) string {
	return fmt.Sprintf("  -> %-8s %s (%s)", s.ID, s.Title, s.Reason)
}

func stepDone(s provision.Step, took time.Duration, err error) string {
	mark := "ok"
	if err != nil {
		mark = "FAILED"
	}
	return fmt.Sprintf("  %-6s %-8s %s  %s", mark, s.ID, s.Title, took.Round(100*time.Millisecond))
}

// ForNode is the UI for one node of a cluster provisioned with others at
// once: each of its lines starts with label.
func (u *ui) ForNode(label string) workflow.UI { return nodeUI{ui: u, label: label} }

type nodeUI struct {
	ui    *ui
	label string
}

func (n nodeUI) Printf(format string, args ...any) {
	n.ui.Printf("%s %s", n.label, fmt.Sprintf(format, args...))
}
func (n nodeUI) StepStarted(s provision.Step) { n.ui.Printf("%s%s", n.label, stepStarted(s)) }
func (n nodeUI) StepDone(s provision.Step, took time.Duration, err error) {
	n.ui.Printf("%s%s", n.label, stepDone(s, took, err))
}
func (n nodeUI) Confirm(q string) (bool, error) { return n.ui.Confirm(q) }

func writeJSON(w io.Writer, v any, err error) error {
	out := map[string]any{"ok": err == nil, "result": v}
	if err != nil {
		out["error"] = err.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printProvisionResult(w io.Writer, out provisionOutput, err error, spec provision.Spec, name string) {
	res := out.Result
	if res == nil {
		return
	}
	if res.DryRun {
		if err != nil {
			return
		}
		if len(res.Plan) == 0 {
			fmt.Fprintf(w, "%s is already as specified: nothing to do.\n", res.Host)
			return
		}
		fmt.Fprintf(w, "Plan for %s (dry run, nothing changed):\n", res.Host)
		for i, st := range res.Plan {
			fmt.Fprintf(w, "  %d. %-8s %s  [%s]\n", i+1, st.ID, st.Title, st.Reason)
		}
		return
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(res.Plan) == 0 && res.Facts.OSID != "" {
		fmt.Fprintf(w, "%s was already as specified: nothing changed.\n", res.Host)
	} else if len(res.Applied) > 0 {
		var done []string
		for _, a := range res.Applied {
			if a.Error == "" {
				done = append(done, a.ID)
			}
		}
		fmt.Fprintf(w, "Applied on %s: %s\n", res.Host, strings.Join(done, ", "))
	}
	if err != nil {
		return
	}
	fmt.Fprintf(w, "Kafka %s is running on %s", spec.KafkaVersion, res.Host)
	if res.ClusterID != "" {
		fmt.Fprintf(w, " (cluster id %s)", res.ClusterID)
	}
	fmt.Fprintln(w, ".")
	if res.Verified != nil {
		fmt.Fprintf(w, "Verified from here: produced and consumed a record via %s in %s.\n", res.Verified.Bootstrap, res.Verified.RoundTrip)
	}
	printTryIt(w, res.Bootstrap, out.Client, name)
}

// printTryIt says how clients connect, and how to try it.
func printTryIt(w io.Writer, bootstrap string, cf *secrets.ClientFiles, name string) {
	if cf != nil {
		printSecureClient(w, bootstrap, cf, name)
		return
	}
	fmt.Fprintf(w, "\nBootstrap servers: %s\n\nTry it:\n", bootstrap)
	fmt.Fprintf(w, "  kcat -b %s -L\n", bootstrap)
	fmt.Fprintf(w, "  echo hello | kcat -b %s -t test -P && kcat -b %s -t test -C -e\n", bootstrap, bootstrap)
	fmt.Fprintf(w, "  kafka-console-producer.sh --bootstrap-server %s --topic test\n", bootstrap)
}

// printSecureClient says how to connect to a broker with TLS and/or SCRAM:
// the settings are in files (the password is never printed).
func printSecureClient(w io.Writer, bootstrap string, cf *secrets.ClientFiles, name string) {
	how := cf.Protocol
	if cf.Username != "" {
		how += fmt.Sprintf(", %s user %s", cf.Mechanism, cf.Username)
	}
	fmt.Fprintf(w, "\nBootstrap servers: %s (%s)\n", bootstrap, how)
	fmt.Fprintf(w, "Client settings (mode 0600; they hold the password):\n")
	fmt.Fprintf(w, "  librdkafka, kcat:     %s\n", cf.Librdkafka)
	fmt.Fprintf(w, "  Java, Kafka's tools:  %s\n", cf.Java)
	if cf.CAFile != "" {
		fmt.Fprintf(w, "  CA certificate:       %s\n", cf.CAFile)
	}
	fmt.Fprintf(w, "\nTry it:\n")
	fmt.Fprintf(w, "  kcat -F %s -L\n", cf.Librdkafka)
	fmt.Fprintf(w, "  echo hello | kcat -F %s -t test -P && kcat -F %s -t test -C -e\n", cf.Librdkafka, cf.Librdkafka)
	fmt.Fprintf(w, "  kafka-console-producer.sh --bootstrap-server %s --command-config %s --topic test\n", bootstrap, cf.Java)
	fmt.Fprintf(w, "  eval \"$(kafkaup env %s)\"   # KAFKA_* variables; add --show-secrets for the password\n", name)
}
