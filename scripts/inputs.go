package scripts

// Observe gathers the host's facts (observe.sh).
type Observe struct {
	InstallDir   string   `sh:"INSTALL_DIR"`
	DataDir      string   `sh:"DATA_DIR"`
	LogDir       string   `sh:"LOG_DIR"`
	ConfigDir    string   `sh:"CONFIG_DIR"`
	StateDir     string   `sh:"STATE_DIR"`
	SwapFile     string   `sh:"SWAP_FILE"`
	Service      string   `sh:"SERVICE"`
	ManagedFiles []string `sh:"MANAGED_FILES"`
	HeadStartDir string   `sh:"HEAD_START_DIR"`
	DistName     string   `sh:"DIST_NAME"`
}

func (Observe) ScriptName() string { return "observe.sh" }

// InstallPackages waits for cloud-init and the dpkg lock, then installs Java
// and curl with apt (install-packages.sh).
type InstallPackages struct {
	WantJava         bool     `sh:"WANT_JAVA"`
	WantCurl         bool     `sh:"WANT_CURL"`
	JavaPackages     []string `sh:"JAVA_PACKAGES"`
	CloudInitTimeout int      `sh:"CLOUD_INIT_TIMEOUT"`
	APTLockTimeout   int      `sh:"APT_LOCK_TIMEOUT"`
}

func (InstallPackages) ScriptName() string { return "install-packages.sh" }

// WaitAPT waits for cloud-init and for other apt or dpkg runs to let go of
// the dpkg lock, changing nothing (wait-apt.sh).
type WaitAPT struct {
	CloudInitTimeout int `sh:"CLOUD_INIT_TIMEOUT"`
	APTLockTimeout   int `sh:"APT_LOCK_TIMEOUT"`
}

func (WaitAPT) ScriptName() string { return "wait-apt.sh" }

// FetchKafka downloads or takes an uploaded tarball, verifies it against
// ExpectedSHA512 and installs it (fetch-kafka.sh). A failed or damaged
// download is tried DownloadRetries more times per URL, with exponential
// backoff.
type FetchKafka struct {
	InstallDir      string   `sh:"INSTALL_DIR"`
	DistName        string   `sh:"DIST_NAME"`
	URLs            []string `sh:"URLS"`
	ExpectedSHA512  string   `sh:"EXPECTED_SHA512"` // lower-case hex; required
	LocalTarball    string   `sh:"LOCAL_TARBALL"`
	DownloadRetries int      `sh:"DOWNLOAD_RETRIES"`
	StateDir        string   `sh:"STATE_DIR"`
	// HeadStartTarball is where the head start staged its download at
	// boot: used only when its sha512 is ExpectedSHA512, else downloaded
	// again; what it left there is removed either way.
	HeadStartTarball string `sh:"HEAD_START_TARBALL"`
}

func (FetchKafka) ScriptName() string { return "fetch-kafka.sh" }

// HeadStart installs Java and downloads the Kafka tarball into
// HEAD_START_DIR at an instance's first boot (head-start.sh). An empty
// ExpectedSHA512 downloads unchecked: the SSH run verifies it then.
type HeadStart struct {
	Dir             string   `sh:"HEAD_START_DIR"`
	DistName        string   `sh:"DIST_NAME"`
	URLs            []string `sh:"URLS"`
	ExpectedSHA512  string   `sh:"EXPECTED_SHA512"`
	DownloadRetries int      `sh:"DOWNLOAD_RETRIES"`
	JavaPackages    []string `sh:"JAVA_PACKAGES"`
	APTLockTimeout  int      `sh:"APT_LOCK_TIMEOUT"`
}

func (HeadStart) ScriptName() string { return "head-start.sh" }

// HeadStartLaunch is the boothook that starts the rendered head start once
// per instance, detached (head-start-launch.sh). It is rendered without
// lib.sh: Script carries it already.
type HeadStartLaunch struct {
	Dir    string `sh:"HEAD_START_DIR"`
	Script string `sh:"HEAD_START_SCRIPT"`
	Unit   string `sh:"UNIT"`
}

func (HeadStartLaunch) ScriptName() string { return "head-start-launch.sh" }

// WaitHeadStart waits while the head start runs, saying what it does, and
// stops it when it stalls or overruns (wait-head-start.sh).
type WaitHeadStart struct {
	Dir          string `sh:"HEAD_START_DIR"`
	Unit         string `sh:"UNIT"`
	DistName     string `sh:"DIST_NAME"`
	Timeout      int    `sh:"TIMEOUT"`
	StallTimeout int    `sh:"STALL_TIMEOUT"`
}

func (WaitHeadStart) ScriptName() string { return "wait-head-start.sh" }

// FetchChecksum prints the text of one checksum file fetched from the host,
// with the same retries and backoff as the tarball (fetch-checksum.sh).
type FetchChecksum struct {
	URL             string `sh:"URL"`
	DownloadRetries int    `sh:"DOWNLOAD_RETRIES"`
}

func (FetchChecksum) ScriptName() string { return "fetch-checksum.sh" }

// SetupDirs creates the kafka user and its directories (setup-dirs.sh).
type SetupDirs struct {
	DataDir   string `sh:"DATA_DIR"`
	LogDir    string `sh:"LOG_DIR"`
	ConfigDir string `sh:"CONFIG_DIR"`
	StateDir  string `sh:"STATE_DIR"`
}

func (SetupDirs) ScriptName() string { return "setup-dirs.sh" }

// Swap makes the swapfile and its fstab entry (swap.sh).
type Swap struct {
	File  string `sh:"SWAP_FILE"`
	Bytes int64  `sh:"SWAP_BYTES"`
}

func (Swap) ScriptName() string { return "swap.sh" }

// InstallFiles moves staged files into place (install-files.sh). Src, Dest,
// Mode and Owner are parallel lists.
type InstallFiles struct {
	Staging  string   `sh:"STAGING"`
	Src      []string `sh:"SRC"`
	Dest     []string `sh:"DEST"`
	Mode     []string `sh:"MODE"`
	Owner    []string `sh:"OWNER"`
	Remove   []string `sh:"REMOVE"` // managed files no longer wanted (the keystore after TLS is turned off)
	StateDir string   `sh:"STATE_DIR"`
}

func (InstallFiles) ScriptName() string { return "install-files.sh" }

// Format formats KRaft storage once (format.sh).
type Format struct {
	KafkaHome string `sh:"KAFKA_HOME"`
	Config    string `sh:"CONFIG"`
	DataDir   string `sh:"DATA_DIR"`
	ClusterID string `sh:"CLUSTER_ID"`
	// InitialControllers is --initial-controllers for a node of a cluster
	// (the same on every node); empty for a single broker's static quorum.
	InitialControllers string `sh:"INITIAL_CONTROLLERS"`
	// JoinQuorum formats a node that joins a running cluster's quorum
	// (--no-initial-controllers); InitialControllers is then empty.
	JoinQuorum bool `sh:"JOIN_QUORUM"`
}

func (Format) ScriptName() string { return "format.sh" }

// Service starts or restarts the broker and waits for it (service.sh).
type Service struct {
	Action       string `sh:"ACTION"` // start or restart
	Service      string `sh:"SERVICE"`
	KafkaHome    string `sh:"KAFKA_HOME"`
	Config       string `sh:"CONFIG"`
	EnvFile      string `sh:"ENV_FILE"`
	LogDir       string `sh:"LOG_DIR"`
	StateDir     string `sh:"STATE_DIR"`
	BrokerPort   int    `sh:"BROKER_PORT"`
	StartTimeout int    `sh:"START_TIMEOUT"`
	StopTimeout  int    `sh:"STOP_TIMEOUT"`
	// KillAfter (stop only): seconds after which a broker still in its
	// controlled shutdown is killed; 0 waits up to StopTimeout.
	KillAfter int `sh:"KILL_AFTER"`
}

func (Service) ScriptName() string { return "service.sh" }

// Status reports the broker's health on the host (status.sh).
type Status struct {
	Service    string `sh:"SERVICE"`
	InstallDir string `sh:"INSTALL_DIR"`
	DataDir    string `sh:"DATA_DIR"`
}

func (Status) ScriptName() string { return "status.sh" }

// Logs prints or streams the broker's log (logs.sh).
type Logs struct {
	Service string `sh:"SERVICE"`
	LogDir  string `sh:"LOG_DIR"`
	Lines   int    `sh:"LINES"`
	Follow  bool   `sh:"FOLLOW"`
}

func (Logs) ScriptName() string { return "logs.sh" }

// Topics runs kafka-topics.sh on the host (topics.sh).
type Topics struct {
	Action            string   `sh:"ACTION"`
	Topic             string   `sh:"TOPIC"`
	Partitions        int      `sh:"PARTITIONS"`
	ReplicationFactor int      `sh:"REPLICATION_FACTOR"`
	Configs           []string `sh:"CONFIGS"`
	KafkaHome         string   `sh:"KAFKA_HOME"`
	Bootstrap         string   `sh:"BOOTSTRAP"`
}

func (Topics) ScriptName() string { return "topics.sh" }
