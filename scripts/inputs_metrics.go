package scripts

// FetchAgent downloads or takes an uploaded Prometheus JMX exporter agent
// jar, verifies its sha256 and moves it into place (fetch-agent.sh), with
// the same retries as FetchKafka.
type FetchAgent struct {
	AgentPath       string   `sh:"AGENT_PATH"`
	URLs            []string `sh:"URLS"`
	SHA256          string   `sh:"SHA256"`
	LocalAgent      string   `sh:"LOCAL_AGENT"`
	DownloadRetries int      `sh:"DOWNLOAD_RETRIES"`
}

func (FetchAgent) ScriptName() string { return "fetch-agent.sh" }
