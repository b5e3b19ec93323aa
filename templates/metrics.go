package templates

// RenderMetricsRules renders the Prometheus JMX exporter's rule file. It
// takes no values: the rules are the same on every broker.
func RenderMetricsRules() ([]byte, error) {
	return render("jmx-exporter.yaml.tmpl", nil)
}
