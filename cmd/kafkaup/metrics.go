package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/workflow"
)

func metricsCommand() *cli.Command {
	return &cli.Command{
		Name:      "metrics",
		Usage:     "print the Prometheus scrape URLs of a broker set up with --metrics, and a ready scrape_configs snippet",
		UsageText: "kafkaup metrics NAME [--json]",
		Flags:     []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			env, err := localEnv()
			if err != nil {
				return err
			}
			m, err := workflow.Metrics(env, c.Args().First())
			if err != nil || c.Bool("json") {
				return jsonOr(c, m, err)
			}
			for _, u := range m.URLs {
				fmt.Fprintln(c.App.Writer, u)
			}
			fmt.Fprintf(c.App.Writer, "\n# prometheus.yml\n%s", m.ScrapeConfig)
			return nil
		},
	}
}
