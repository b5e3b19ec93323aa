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

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usagef is a mistake in the command line (exit status 2): the one type
// every layer uses for the user's mistakes.
func usagef(format string, args ...any) error { return provision.Inputf(format, args...) }

// usage marks err as the user's mistake.
func usage(err error) error { return &provision.InputError{Err: err} }

func newApp() *cli.App {
	app := &cli.App{
		Name:    "kafkaup",
		Usage:   "a working Apache Kafka broker on EC2 or any host you can reach over SSH, in one command",
		Version: version,
		Commands: []*cli.Command{
			createCommand(),
			destroyCommand(),
			allowCommand(),
			instanceCommand("stop"),
			instanceCommand("start"),
			provisionCommand(),
			reprovisionCommand(),
			statusCommand(),
			logsCommand(),
			sshCommand(),
			brokerCommand(),
			nodeCommand(),
			envCommand(),
			listCommand(),
			forgetCommand(),
			topicsCommand(),
			groupsCommand(),
			topCommand(),
			metricsCommand(),
			produceCommand(),
			consumeCommand(),
			completionCommand(),
		},
		EnableBashCompletion: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usage(err)
		},
	}
	withBrokerCompletion(app.Commands, map[string]bool{"reprovision": true, "status": true, "logs": true, "ssh": true,
		"env": true, "forget": true, "produce": true, "consume": true, "destroy": true, "allow": true, "start": true, "stop": true, "top": true, "metrics": true})
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

// exitCode prints the error and maps it to 0 success, 1 failure, 2 usage,
// 130 interrupted.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var remoteStatus exitStatus
	var input *provision.InputError
	var interrupted *workflow.InterruptedError
	switch {
	case errors.As(err, &remoteStatus):
		return int(remoteStatus) // a remote command's own status, already reported by it
	case errors.As(err, &interrupted):
		fmt.Fprintf(stderr, "kafkaup: %v:\n  %s\n", err, strings.Join(os.Args, " "))
		return 130
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "kafkaup: interrupted (%v); what was done stays done, and running the same command again resumes\n", err)
		return 130
	}
	fmt.Fprintf(stderr, "kafkaup: %v\n", err)
	if errors.As(err, &input) {
		return 2
	}
	return 1
}

// isUsage says whether err is the user's mistake.
func isUsage(err error) bool {
	var input *provision.InputError
	return errors.As(err, &input)
}
