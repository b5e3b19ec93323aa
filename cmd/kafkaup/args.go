package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves a command's flags in front of its positional arguments,
// so `kafkaup topics create dev orders --partitions 3` works: urfave/cli v2
// stops reading flags at the first positional argument. Everything after a
// literal "--" is left alone (it belongs to `kafkaup ssh NAME -- COMMAND`).
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i := 1
	// Walk down the command path: global flags and command names.
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			i++
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		cmds, flags = cmd.Subcommands, cmd.Flags
		i++
		if len(cmds) == 0 {
			break
		}
	}
	var flagArgs, positional []string
	for i < len(args) {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
			continue
		case strings.HasPrefix(a, "-") && a != "-":
			flagArgs = append(flagArgs, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				flagArgs = append(flagArgs, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
		i++
	}
	return append(append(out, flagArgs...), positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, alias := range c.Aliases {
			if alias == name {
				return c
			}
		}
	}
	return nil
}

// takesValue tells whether the flag token names a flag that needs a value.
func takesValue(flags []cli.Flag, token string) bool {
	name := strings.TrimLeft(token, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if dv, ok := f.(cli.DocGenerationFlag); ok {
				return dv.TakesValue()
			}
			return true
		}
	}
	return false
}
