//! The `badgedock` binary: parses the command line, runs the subcommand and maps errors
//! to sysexits codes (78 for a bad config, 77 for a permission problem, 69 when the
//! daemon is unreachable, 70 for internal errors, 1 for a refused tap). Only this file
//! decides the exit code, and only it prints command output to stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use badgedock::config::{self, ConfigError, LoadEnv};
use badgedock::control::{self, Request, Response};
use badgedock::daemon::{self, logging};

/// sysexits codes.
mod exit {
    pub const REFUSED: u8 = 1;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const NOPERM: u8 = 77;
    pub const CONFIG: u8 = 78;
}

const DEFAULT_CONFIG: &str = "/etc/badgedock/badgedock.toml";

#[derive(Debug, Parser)]
#[command(
    name = "badgedock",
    version,
    about = "Badge-tap check-out of shared phones at a charging cabinet (Workspace ONE UEM)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the station daemon (systemd Type=notify).
    Run {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the station screen, fed by the daemon over the control socket.
    Dashboard {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Plain ASCII drawing (automatic on the Linux text console).
        #[arg(long)]
        ascii: bool,
    },
    /// Run a whole station in one process on embedded defaults: simulated readers and
    /// dock, the built-in Workspace ONE simulator, a temporary store, the dashboard.
    Demo {
        /// Play a scripted shift without a terminal and print a summary.
        #[arg(long)]
        headless: bool,
        /// How many taps the scripted shift makes.
        #[arg(long, default_value_t = 12)]
        taps: u32,
    },
    /// Inject a tap through the control socket (root or the admin group only).
    Tap {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Attribute the tap to this reader (its format rule applies).
        #[arg(long)]
        reader: Option<String>,
        /// The badge, as the reader renders it (uppercase hex UID for format = "hex").
        badge: String,
    },
    /// Show every slot, reader, loan and the Workspace ONE state.
    Status {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a config file and report every problem at once (exit 78 on error).
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// List PC/SC readers; with --watch, print every rendering of each tapped badge.
    Readers {
        /// Print each tap as it happens.
        #[arg(long)]
        watch: bool,
        /// A config whose reader format rules to show as well.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The Workspace ONE UEM simulator, a real HTTP server for tests and demos.
    UemSim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// A JSON seed file (devices, users); the built-in demo seed otherwise.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Latency added to every answer.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Faults to inject (repeatable), e.g. 500:3, 429, 429-retry-after:2, timeout:1.
        #[arg(long)]
        fault: Vec<String>,
    },
    /// The station's local badge table.
    Badges {
        #[command(subcommand)]
        command: BadgesCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The fleet: the PostgreSQL fleet store's schema and the web console.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Serve the web console (reads the fleet store as the console role).
    Serve {
        /// The console's config file.
        #[arg(long, default_value = "/etc/badgedock/fleet-console.toml")]
        config: PathBuf,
    },
    /// Apply the fleet store's schema migrations; the config's fleet.url names the
    /// database owner (run fleet/roles.sql first).
    Migrate {
        /// A console-style config file whose [fleet] section connects as the owner.
        #[arg(long)]
        config: PathBuf,
    },
    /// Read a password on stdin and print an argon2id hash for the console's users file.
    HashPassword,
}

#[derive(Debug, Subcommand)]
enum BadgesCommand {
    /// Import badge,username,display-name[,groups][,roles] rows from a CSV file.
    Import {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The CSV file.
        file: PathBuf,
    },
    /// List the local badges (numbers redacted).
    List {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Complete a supervised enrolment: after an unknown badge and then a supervisor's
    /// badge were tapped, give the unknown badge to USERNAME (root or the admin group).
    Enroll {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The Workspace ONE username (must be in the badge directory, once in Workspace ONE).
        username: String,
    },
    /// Remove a badge.
    Remove {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The badge number.
        badge: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Write the audit log as CSV to stdout (badge numbers redacted).
    Export {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// CSV output (the only format).
        #[arg(long)]
        csv: bool,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn new(code: u8, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::SOFTWARE,
            error,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Failure {
        Failure {
            code: exit::CONFIG,
            error: error.into(),
        }
    }
}

#[allow(clippy::print_stdout)]
fn out(text: &str) {
    println!("{text}");
}

#[allow(clippy::print_stderr)]
fn err_line(text: &str) {
    eprintln!("{text}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_logs = matches!(
        cli.command,
        Command::Demo {
            headless: false,
            ..
        } | Command::Dashboard { .. }
    );
    logging::init(
        if quiet_logs {
            logging::LogTarget::Quiet
        } else {
            logging::LogTarget::Auto
        },
        // The headless demo's output is its summary; its logs only say what went wrong.
        if matches!(cli.command, Command::Demo { .. }) {
            "warn"
        } else {
            "info"
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            err_line(&format!(
                "badgedock: cannot start the async runtime: {error}"
            ));
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            err_line(&format!("badgedock: {:#}", failure.error));
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run { config } => daemon::run(&config).await.map_err(|err| match err {
            daemon::RunError::Config(config_error) => Failure::from(config_error),
            daemon::RunError::Other(other) => Failure::new(exit_code_for(&other), other),
        }),
        Command::CheckConfig { file } => check_config(&file),
        Command::Tap {
            config,
            reader,
            badge,
        } => tap(&config, reader, badge).await,
        Command::Status { config, json } => status(&config, json).await,
        Command::Dashboard { config, ascii } => dashboard(&config, ascii).await,
        Command::Demo { headless, taps } => {
            if headless {
                let summary = daemon::demo::run_headless(taps).await?;
                out(&summary.to_string());
                if summary.failures > 0 {
                    return Err(Failure::new(
                        exit::SOFTWARE,
                        anyhow::anyhow!("the scripted shift had {} failures", summary.failures),
                    ));
                }
                Ok(())
            } else {
                daemon::demo::run_interactive().await.map_err(Failure::from)
            }
        }
        Command::Readers { watch, config } => readers(watch, config.as_deref()).await,
        Command::UemSim {
            listen,
            seed,
            latency_ms,
            fault,
        } => uem_sim(&listen, seed, latency_ms, &fault).await,
        Command::Badges { command } => badges(command).await,
        Command::Audit {
            command: AuditCommand::Export { config, csv: _ },
        } => audit_export(&config).await,
        Command::Fleet { command } => fleet(command).await,
    }
}

async fn fleet(command: FleetCommand) -> Result<(), Failure> {
    use badgedock::fleet::console;
    let env = LoadEnv {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    };
    match command {
        FleetCommand::Serve { config } => {
            let config = console::config::load(&config, &env)?;
            console::serve(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(Failure::from)
        }
        FleetCommand::Migrate { config } => {
            let config = console::config::load(&config, &env)?;
            let mut client = badgedock::fleet::connect(&config.fleet)
                .await
                .map_err(|err| Failure::new(exit::UNAVAILABLE, anyhow::Error::new(err)))?;
            let applied = badgedock::fleet::migrate(&mut client, &config.fleet.url)
                .await
                .map_err(|err| Failure::new(exit::SOFTWARE, anyhow::Error::new(err)))?;
            if applied.is_empty() {
                out("the fleet store's schema is up to date");
            }
            for migration in applied {
                out(&format!("applied {migration}"));
            }
            Ok(())
        }
        FleetCommand::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(Failure::new(
                    exit::CONFIG,
                    anyhow::anyhow!("empty password on stdin: type one, then Enter"),
                ));
            }
            let hash = console::hash_password(password).map_err(|err| {
                Failure::new(exit::SOFTWARE, anyhow::anyhow!("cannot hash: {err}"))
            })?;
            out(&hash);
            Ok(())
        }
    }
}

/// Permission problems get 77 so scripts can tell them apart.
fn exit_code_for(error: &anyhow::Error) -> u8 {
    let permission = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    if permission {
        exit::NOPERM
    } else {
        exit::SOFTWARE
    }
}

fn load_config(path: &Path) -> Result<config::Config, Failure> {
    let env = LoadEnv {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    };
    Ok(config::load(path, &env)?)
}

fn check_config(file: &Path) -> Result<(), Failure> {
    let config = load_config(file)?;
    out(&format!(
        "{}: ok — station {:?}, {} reader(s), {} slot(s), directory {}, Workspace ONE {}",
        file.display(),
        config.station.name,
        config.readers.len(),
        config.dock.slots.len(),
        match &config.directory {
            config::DirectoryConfig::File { path } => format!("file {}", path.display()),
            config::DirectoryConfig::Ldap(ldap) => format!("ldap {}", ldap.url),
            config::DirectoryConfig::Http { url, .. } => format!("http {url}"),
        },
        config
            .uem
            .as_ref()
            .map(|u| u.base_url.as_str())
            .unwrap_or("not configured")
    ));
    if config.readers.is_empty() {
        out("note: no [[reader]] configured: taps come only from `badgedock tap`");
    }
    Ok(())
}

async fn control_request(
    config: &Path,
    request: Request,
    timeout: Duration,
) -> Result<Response, Failure> {
    let config = load_config(config)?;
    control::request(&config.station.control_socket, request, timeout)
        .await
        .map_err(|err| match &err {
            control::ControlError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Failure::new(
                    exit::NOPERM,
                    anyhow::Error::new(err)
                        .context("run as root or as a member of the admin group"),
                )
            }
            _ => Failure::new(exit::UNAVAILABLE, err),
        })
}

async fn tap(config: &Path, reader: Option<String>, badge: String) -> Result<(), Failure> {
    match control_request(
        config,
        Request::Tap { reader, badge },
        Duration::from_secs(15),
    )
    .await?
    {
        Response::Decision {
            decision:
                badgedock::checkout::TapDecision::TakeSlot {
                    display_name,
                    slot,
                    device,
                },
        } => {
            out(&format!("{display_name}: take slot {slot} ({device})"));
            Ok(())
        }
        Response::Decision {
            decision: badgedock::checkout::TapDecision::EnrollmentApproved { approver },
        } => {
            out(&format!(
                "enrolment approved by {approver}: now run `badgedock badges enroll USERNAME`"
            ));
            Ok(())
        }
        Response::Decision {
            decision: badgedock::checkout::TapDecision::Refused { reason },
        } => Err(Failure::new(
            exit::REFUSED,
            anyhow::anyhow!("tap refused: {reason}"),
        )),
        Response::Error { message } if message.starts_with("permission denied") => {
            Err(Failure::new(exit::NOPERM, anyhow::anyhow!(message)))
        }
        Response::Error { message } => Err(Failure::new(exit::REFUSED, anyhow::anyhow!(message))),
        other => Err(Failure::new(
            exit::SOFTWARE,
            anyhow::anyhow!("unexpected answer from the daemon: {other:?}"),
        )),
    }
}

async fn status(config: &Path, json: bool) -> Result<(), Failure> {
    let Response::Snapshot { snapshot } =
        control_request(config, Request::Status, Duration::from_secs(5)).await?
    else {
        return Err(Failure::new(
            exit::SOFTWARE,
            anyhow::anyhow!("unexpected answer from the daemon"),
        ));
    };
    if json {
        out(&serde_json::to_string_pretty(&snapshot).context("cannot encode the status")?);
    } else {
        out(&badgedock::daemon::status_text(&snapshot));
    }
    Ok(())
}

async fn dashboard(config: &Path, ascii: bool) -> Result<(), Failure> {
    let config = load_config(config)?;
    let ascii = ascii || std::env::var("TERM").is_ok_and(|term| term == "linux");
    let options = badgedock::dashboard::DashboardOptions {
        ascii,
        admin: config.dashboard.admin,
        demo_keys: false,
    };
    badgedock::dashboard::run_for_socket(config.station.control_socket.clone(), options)
        .await
        .map_err(Failure::from)
}

async fn readers(watch: bool, config: Option<&Path>) -> Result<(), Failure> {
    let configured = match config {
        Some(path) => load_config(path)?.readers,
        None => Vec::new(),
    };
    let names = tokio::task::spawn_blocking(badgedock::readers::pcsc::list_readers)
        .await
        .context("reader listing panicked")?
        .map_err(|err| {
            Failure::new(
                exit::UNAVAILABLE,
                anyhow::Error::new(err).context(
                    "cannot list PC/SC readers: is pcscd running? (systemctl status pcscd)",
                ),
            )
        })?;
    if names.is_empty() {
        out("no PC/SC readers found");
    }
    for name in &names {
        out(&format!("reader: {name}"));
    }
    if !watch {
        return Ok(());
    }
    out("waiting for taps (Ctrl-C to stop)…");
    let (sender, receiver) = std::sync::mpsc::channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        let configured = configured.clone();
        std::thread::spawn(move || badgedock::readers::pcsc::watch(&configured, sender, cancel))
    };
    let printer = tokio::task::spawn_blocking(move || {
        for (reader, raw) in receiver {
            out(&format!("tap on {reader}:"));
            for (label, value) in badgedock::badges::format::renderings(&raw) {
                out(&format!("  {label:<22} {value}"));
            }
            for rule in configured.iter().filter(|r| reader.contains(&r.matcher)) {
                match rule.format.apply(&raw) {
                    Ok(number) => out(&format!(
                        "  configured {:<11} {} (reader {})",
                        rule.format.as_str(),
                        number.expose(),
                        rule.name
                    )),
                    Err(err) => out(&format!(
                        "  configured {:<11} not readable: {err}",
                        rule.format.as_str()
                    )),
                }
            }
        }
    });
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
    let _ = printer.await;
    let _ = watcher.join();
    Ok(())
}

async fn uem_sim(
    listen: &str,
    seed: Option<PathBuf>,
    latency_ms: u64,
    faults: &[String],
) -> Result<(), Failure> {
    let mut parsed = Vec::new();
    for fault in faults {
        parsed.push(badgedock::uemsim::parse_fault(fault).map_err(|message| {
            Failure::new(
                exit::CONFIG,
                anyhow::anyhow!("--fault {fault:?}: {message}"),
            )
        })?);
    }
    let options = badgedock::uemsim::SimOptions {
        seed,
        latency_ms,
        faults: parsed,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().context("no local address")?;
    out(&format!(
        "Workspace ONE simulator listening on http://{address}"
    ));
    badgedock::uemsim::serve(listener, options, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(Failure::from)
}

async fn open_store(config: &Path) -> Result<badgedock::store::Store, Failure> {
    let config = load_config(config)?;
    let path = daemon::store_path(&config);
    badgedock::store::Store::open(&path)
        .with_context(|| format!("cannot open the station's store {}", path.display()))
        .map_err(|err| Failure::new(exit_code_for(&err), err))
}

async fn badges(command: BadgesCommand) -> Result<(), Failure> {
    match command {
        BadgesCommand::Import { config, file } => {
            let store = open_store(&config).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (rows, problems) = badgedock::directory::parse_badge_csv(&text);
            for problem in &problems {
                err_line(&format!(
                    "{}:{}: {}",
                    file.display(),
                    problem.line,
                    problem.message
                ));
            }
            let now = daemon::now();
            let badges = rows
                .into_iter()
                .map(|row| badgedock::store::LocalBadge {
                    number: row.badge,
                    user: row.user,
                    source: badgedock::store::BadgeSource::Import,
                    approved_by: None,
                    added_at: now,
                })
                .collect();
            let count = store
                .upsert_badges(badges)
                .await
                .context("cannot write the badges")?;
            out(&format!(
                "imported {count} badge(s); {} row(s) skipped",
                problems.len()
            ));
            if !problems.is_empty() {
                return Err(Failure::new(
                    exit::CONFIG,
                    anyhow::anyhow!(
                        "{} row(s) of {} could not be imported",
                        problems.len(),
                        file.display()
                    ),
                ));
            }
            Ok(())
        }
        BadgesCommand::Enroll { config, username } => {
            match control_request(
                &config,
                Request::Enroll { username },
                Duration::from_secs(20),
            )
            .await?
            {
                Response::Done { message } => {
                    out(&message);
                    Ok(())
                }
                Response::Error { message } if message.starts_with("permission denied") => {
                    Err(Failure::new(exit::NOPERM, anyhow::anyhow!(message)))
                }
                Response::Error { message } => {
                    Err(Failure::new(exit::REFUSED, anyhow::anyhow!(message)))
                }
                other => Err(Failure::new(
                    exit::SOFTWARE,
                    anyhow::anyhow!("unexpected answer from the daemon: {other:?}"),
                )),
            }
        }
        BadgesCommand::List { config } => {
            let store = open_store(&config).await?;
            for badge in store
                .list_badges()
                .await
                .context("cannot read the badges")?
            {
                out(&format!(
                    "{}\t{}\t{}\t{:?}",
                    badge.number, badge.user.username, badge.user.display_name, badge.source
                ));
            }
            Ok(())
        }
        BadgesCommand::Remove { config, badge } => {
            let store = open_store(&config).await?;
            let number = badgedock::domain::BadgeNumber::new(badge.trim().to_ascii_uppercase());
            if store
                .remove_badge(&number)
                .await
                .context("cannot remove the badge")?
            {
                out(&format!("removed {number}"));
                Ok(())
            } else {
                Err(Failure::new(
                    exit::REFUSED,
                    anyhow::anyhow!("no local badge {number}"),
                ))
            }
        }
    }
}

async fn audit_export(config: &Path) -> Result<(), Failure> {
    let store = open_store(config).await?;
    let stdout = std::io::stdout();
    store
        .export_audit_csv(stdout)
        .await
        .context("cannot export the audit log")?;
    Ok(())
}
