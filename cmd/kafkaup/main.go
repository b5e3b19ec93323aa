// Command kafkaup gives you a working Apache Kafka broker on a host you can
// SSH into (and, later, on EC2), keeps it healthy and tears it down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks mistakes in the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func newApp() *cli.App {
	app := &cli.App{
		Name:    "kafkaup",
		Usage:   "a working Apache Kafka broker on EC2 or any host you can reach over SSH, in one command",
		Version: version,
		Commands: []*cli.Command{
			createCommand(),
			destroyCommand(),
			instanceCommand("stop"),
			instanceCommand("start"),
			provisionCommand(),
			reprovisionCommand(),
			statusCommand(),
			logsCommand(),
			sshCommand(),
			brokerCommand(),
			envCommand(),
			listCommand(),
			forgetCommand(),
			topicsCommand(),
			produceCommand(),
			consumeCommand(),
			completionCommand(),
		},
		EnableBashCompletion: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{err.Error()}
		},
	}
	withBrokerCompletion(app.Commands, map[string]bool{"reprovision": true, "status": true, "logs": true, "ssh": true,
		"env": true, "forget": true, "produce": true, "consume": true, "destroy": true, "start": true, "stop": true})
	return app
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// run runs the app with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	return exitCode(app.RunContext(ctx, flagsFirst(app, args)), stderr)
}

// exitCode prints the error and maps it to 0 success, 1 failure, 2 usage.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var remoteStatus exitStatus
	if !errors.As(err, &remoteStatus) {
		fmt.Fprintf(stderr, "kafkaup: %v\n", err)
	}
	if strings.HasPrefix(err.Error(), "Required flag") {
		return 2
	}
	var usage *usageError
	switch {
	case errors.As(err, &remoteStatus):
		return int(remoteStatus) // a remote command's own status, already reported by it
	case errors.As(err, &usage):
		return 2
	}
	return 1
}
