package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/state"
)

// bashScript asks kafkaup itself for completions (urfave/cli's
// --generate-bash-completion), so flags, commands and broker names stay
// current.
const bashScript = `# kafkaup bash completion: source <(kafkaup completion bash)
_kafkaup_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]} words
  if [[ $cur == -* ]]; then
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _kafkaup_complete kafkaup
`

const zshScript = `# kafkaup zsh completion: source <(kafkaup completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
` + bashScript

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		UsageText: "source <(kafkaup completion bash)   |   kafkaup completion fish > ~/.config/fish/completions/kafkaup.fish",
		Action: func(c *cli.Context) error {
			switch shell := c.Args().First(); shell {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashScript)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshScript)
				return err
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, script)
				return err
			default:
				return usagef("name a shell: kafkaup completion bash|zsh|fish")
			}
		},
	}
}

// completeBrokerNames offers recorded broker names as the first argument.
func completeBrokerNames(c *cli.Context) {
	if c.NArg() > 0 {
		return
	}
	dir, err := state.Dir()
	if err != nil {
		return
	}
	all, err := state.Store{Dir: dir}.List()
	if err != nil {
		return
	}
	for _, b := range all {
		fmt.Fprintln(c.App.Writer, b.Name)
	}
}

// withBrokerCompletion sets broker-name completion on every command that
// takes NAME first, down the command tree.
func withBrokerCompletion(cmds []*cli.Command, takesName map[string]bool) {
	for _, cmd := range cmds {
		if takesName[cmd.Name] && cmd.BashComplete == nil {
			cmd.BashComplete = completeBrokerNames
		}
		withBrokerCompletion(cmd.Subcommands, map[string]bool{"start": true, "stop": true, "restart": true,
			"create": true, "list": true, "describe": true, "delete": true})
	}
}
