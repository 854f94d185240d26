//! The `badgedock` binary: parses the command line, runs the subcommand and maps errors
//! to sysexits codes (78 for a bad config, 77 for a permission problem, 69 when the
//! daemon is unreachable, 70 for internal errors, 1 for a refused tap). Only this file
//! decides the exit code, and only it prints command output to stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};

use badgedock::config::{self, ConfigError, LoadEnv};
use badgedock::control::{self, Request, Response};
use badgedock::daemon::{self, logging};

mod manual;

/// sysexits codes.
mod exit {
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
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
        /// The config file (or give it with --config).
        #[arg(conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Copy the station's store to FILE with SQLite's online backup, safe while the
    /// daemon runs (badge numbers are in it only as keyed hashes).
    Backup {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where to write the copy (must not exist yet).
        file: PathBuf,
    },
    /// Check everything outside the box live (Workspace ONE, staging user, docked
    /// phones, directory, readers, clock, disk) and print a checklist; exit 1 on a failure.
    Doctor {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A badge number (as the reader renders it) to look up in the directory.
        #[arg(long)]
        badge: Option<String>,
        /// The installation test: check the phone in this slot out to --user and back in
        /// (the daemon must be stopped).
        #[arg(long, value_name = "SLOT", requires = "user")]
        check_out: Option<String>,
        /// The Workspace ONE user for --check-out.
        #[arg(long, requires = "check_out")]
        user: Option<String>,
        /// Plain ASCII marks instead of ✓ ! ✗.
        #[arg(long)]
        ascii: bool,
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
        /// A wiped phone enrols again to its staging account after this long (0: never).
        #[arg(long, default_value_t = 3000)]
        reenrol_after_ms: u64,
        /// A tenant-wide throttle: at most N API calls per second, 429 with Retry-After
        /// beyond it (on top of the 250,000-calls-per-day quota).
        #[arg(long)]
        rate_per_second: Option<u32>,
    },
    /// The deterministic station simulator: seeded runs of the real engine and store
    /// against a Workspace ONE model and a world of nurses, phones and faults.
    Sim {
        /// The first seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many seeds, from --seed on.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Events per seed.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Print every transcript line.
        #[arg(long)]
        verbose: bool,
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
    /// Usage figures from the audit: per phone, per hour of the day, per user's loans.
    Report {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// First day (YYYY-MM-DD, station time) or an RFC 3339 time; the audit's start when absent.
        #[arg(long)]
        from: Option<String>,
        /// Day after the last (YYYY-MM-DD) or an RFC 3339 time; now when absent.
        #[arg(long)]
        to: Option<String>,
        /// Which table: per phone, per hour of the day, or per user's loans.
        #[arg(long, value_enum, default_value_t = badgedock::report::run::By::Phone)]
        by: badgedock::report::run::By,
        /// Only this user's loans (implies --by user).
        #[arg(long)]
        user: Option<String>,
        /// Write the table as CSV to this file ("-" for stdout, the default).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Also draw phones out by hour of the week to this SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Write the manual pages (badgedock.1, badgedock-run.1, …) into a directory
    /// (used when the Debian package is built).
    #[command(hide = true)]
    Manpage {
        /// The directory to write them into.
        dir: PathBuf,
    },
    /// Write a shell completion script to stdout (used when the package is built).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Operator commands for loans and the store (root or the admin group).
    Admin {
        #[command(subcommand)]
        command: AdminCli,
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
enum AdminCli {
    /// Close a loan whose phone will not come back here (returned at another cabinet,
    /// written off). Nothing is sent to Workspace ONE; the phone is identified when docked.
    CloseLoan {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Whose loan.
        #[arg(long)]
        user: Option<String>,
        /// Which phone (UDID or serial number, as `status` shows it).
        #[arg(long)]
        device: Option<String>,
    },
    /// Mark a phone on loan as lost; it is checked in as found when docked again.
    MarkLost {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Whose loan.
        #[arg(long)]
        user: Option<String>,
        /// Which phone (UDID or serial number).
        #[arg(long)]
        device: Option<String>,
    },
    /// Take the phone in a slot out of use as broken (an open reservation of it ends) and
    /// send the repair ticket (`lending.broken-ticket-webhook`).
    MarkBroken {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The slot.
        #[arg(long)]
        slot: String,
    },
    /// Put a repaired phone back in use.
    ClearBroken {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The slot.
        #[arg(long)]
        slot: String,
    },
    /// Take the store as it is after the daemon refused it (a lost WAL, a restored copy,
    /// a reset): phones out since then are forgotten until they are docked. Run with the
    /// daemon stopped.
    AcceptStore {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
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
    /// Check the audit hash chain; exit 65 naming the first bad row.
    Verify {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Remove audit rows older than [audit] retention-days, keeping the chain verifiable.
    Prune {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
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

/// Set once stdout is gone (`badgedock status | head -1`): the rest is dropped quietly.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints one line of command output. A closed pipe is not an error: the reader has
/// what it wanted, so the command still exits 0.
fn out(text: &str) {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if writeln!(lock, "{text}")
        .and_then(|()| lock.flush())
        .is_err()
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// True when `error` comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.to_string().contains("Broken pipe")
    })
}

#[allow(clippy::print_stderr)]
fn err_line(text: &str) {
    if logging::stderr_is_journal() {
        // journald's stream reads `<3>` as priority err (SyslogLevelPrefix=yes).
        for line in text.lines() {
            eprintln!("<3>{line}");
        }
    } else {
        eprintln!("{text}");
    }
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
        if matches!(
            cli.command,
            Command::Demo { .. } | Command::Sim { .. } | Command::Doctor { .. }
        ) {
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
        Err(failure) if is_broken_pipe(&failure.error) => ExitCode::SUCCESS,
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
        Command::CheckConfig { file, config } => check_config(
            &file
                .or(config)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        ),
        Command::Backup { config, file } => backup(&config, &file).await,
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
        Command::Doctor {
            config,
            badge,
            check_out,
            user,
            ascii,
        } => doctor(&config, badge, check_out.zip(user), ascii).await,
        Command::UemSim {
            listen,
            seed,
            latency_ms,
            fault,
            reenrol_after_ms,
            rate_per_second,
        } => {
            uem_sim(
                &listen,
                seed,
                latency_ms,
                &fault,
                reenrol_after_ms,
                rate_per_second,
            )
            .await
        }
        Command::Sim {
            seed,
            seeds,
            events,
            verbose,
        } => simulate(seed, seeds, events, verbose),
        Command::Badges { command } => badges(command).await,
        Command::Audit {
            command: AuditCommand::Export { config, csv: _ },
        } => audit_export(&config).await,
        Command::Admin { command } => admin(command).await,
        Command::Fleet { command } => fleet(command).await,
        Command::Manpage { dir } => {
            let pages = manual::write_pages(Cli::command(), &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            for page in pages {
                out(&page.display().to_string());
            }
            Ok(())
        }
        Command::Completions { shell } => {
            manual::write_completions(Cli::command(), shell, &mut std::io::stdout().lock())
                .context("cannot write the completion script to stdout")?;
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit_verify(&config).await,
        Command::Audit {
            command: AuditCommand::Prune { config },
        } => audit_prune(&config).await,
        Command::Report {
            config,
            from,
            to,
            by,
            user,
            csv,
            svg,
        } => {
            let overdue_ms = load_config(&config)?.engine.overdue_ms;
            let store = open_store(&config).await?;
            let request = badgedock::report::run::Request {
                from,
                to,
                by: if user.is_some() {
                    badgedock::report::run::By::User
                } else {
                    by
                },
                user,
                csv: csv.filter(|path| path.as_os_str() != "-"),
                svg,
                overdue_ms,
            };
            let summary =
                badgedock::report::run::run(&store, &request, &chrono::Local, std::io::stdout())
                    .await
                    .map_err(|error| Failure::new(error.exit_code(), error))?;
            err_line(&summary);
            Ok(())
        }
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

/// `badgedock sim`: runs the seeds, prints the figures, and for each invariant violated
/// its first violation with a shortened transcript and the command that replays it.
fn simulate(seed: u64, seeds: u64, events: u64, verbose: bool) -> Result<(), Failure> {
    use badgedock::sim;
    let started = std::time::Instant::now();
    let (mut total_events, mut total_checks, mut violated) = (0u64, 0u64, 0u64);
    for seed in seed..seed.saturating_add(seeds.max(1)) {
        let mut options = sim::Options::random(seed, events);
        if verbose {
            options.observer = Some(Box::new(|line: &str| out(line)));
        }
        let report =
            sim::run(options).map_err(|e| Failure::new(exit::SOFTWARE, anyhow::Error::from(e)))?;
        total_events += report.events;
        total_checks += report.checks;
        let n_violations: u64 = report.counts.values().sum();
        violated += n_violations;
        out(&format!(
            "seed {seed}: {} events, {} invariant checks, {} s virtual, {n_violations} violations",
            report.events,
            report.checks,
            report.virtual_ms / 1000
        ));
        for first in &report.first {
            out(&format!(
                "\nVIOLATION seed {seed} invariant {} ({}, {} times): {}",
                first.invariant.name(),
                if first.enforced {
                    "enforced"
                } else {
                    "known open"
                },
                report.counts.get(&first.invariant).copied().unwrap_or(0),
                first.detail
            ));
            for line in &first.transcript {
                out(&format!("  | {line}"));
            }
            out(&format!(
                "replay: badgedock sim --seed {seed} --events {} --verbose",
                first.at_event
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    out(&format!(
        "total: {total_events} events in {seconds:.1} s = {:.0} events/s; {total_checks} invariant checks; {violated} violations",
        total_events as f64 / seconds
    ));
    if violated > 0 {
        return Err(Failure::new(
            exit::REFUSED,
            anyhow::anyhow!("the simulator found {violated} invariant violations (see above)"),
        ));
    }
    Ok(())
}

/// Permission problems get 77 and a damaged store 65 (EX_DATAERR: systemd does not
/// restart the daemon on it, a restart cannot repair the file) so scripts can tell them
/// apart.
fn exit_code_for(error: &anyhow::Error) -> u8 {
    let corrupt = error.chain().any(|cause| {
        cause
            .downcast_ref::<badgedock::store::StoreError>()
            .is_some_and(badgedock::store::StoreError::is_corrupt)
    });
    if corrupt {
        return exit::DATAERR;
    }
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
    Ok(config::load_for_station(path, &env)?)
}

/// The client view of the config: the socket and the state folder, no secrets.
fn load_client(path: &Path) -> Result<config::ClientConfig, Failure> {
    Ok(config::load_client(path)?)
}

async fn doctor(
    path: &Path,
    badge: Option<String>,
    check_out: Option<(String, String)>,
    ascii: bool,
) -> Result<(), Failure> {
    use badgedock::doctor;
    let config = load_config(path)?;
    let report = match check_out {
        Some((slot, user)) => {
            let test = doctor::InstallationTest {
                slot: badgedock::domain::SlotLabel::new(slot),
                user: badgedock::domain::Username::new(user),
            };
            doctor::installation_test(&config, &test).await
        }
        None => doctor::run(&config, &doctor::Options { badge }).await,
    };
    let ascii = ascii || !utf8_terminal();
    out(report.render(ascii).trim_end());
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::REFUSED,
            anyhow::anyhow!("doctor found problems; fix the lines marked as failed"),
        ))
    }
}

/// True when the locale is UTF-8 and the terminal is not the Linux console.
fn utf8_terminal() -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    (locale.contains("utf-8") || locale.contains("utf8"))
        && std::env::var("TERM").as_deref() != Ok("linux")
}

fn check_config(file: &Path) -> Result<(), Failure> {
    let config = load_config(file)?;
    for note in &config.notes {
        out(&format!("{}: note: {note}", file.display()));
    }
    out(&format!(
        "{}: ok — station \"{}\", {} reader(s), {} slot(s), directory {}, Workspace ONE {}",
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
    let config = load_client(config)?;
    control::request(&config.control_socket, request, timeout)
        .await
        .map_err(|err| match &err {
            control::ControlError::Connect { kind, .. }
                if *kind == std::io::ErrorKind::PermissionDenied =>
            {
                Failure::new(exit::NOPERM, err)
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
            decision: badgedock::checkout::TapDecision::MarkedBroken { slot },
        } => {
            out(&format!(
                "slot {slot}: returned as broken (out of use until `badgedock admin clear-broken --slot {slot}`)"
            ));
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
        other => Err(unexpected(&other)),
    }
}

async fn admin(command: AdminCli) -> Result<(), Failure> {
    let (config, lost, user, device) = match command {
        AdminCli::AcceptStore { config } => return accept_store(&config).await,
        AdminCli::MarkBroken { config, slot } => return admin_broken(&config, &slot, true).await,
        AdminCli::ClearBroken { config, slot } => return admin_broken(&config, &slot, false).await,
        AdminCli::CloseLoan {
            config,
            user,
            device,
        } => (config, false, user, device),
        AdminCli::MarkLost {
            config,
            user,
            device,
        } => (config, true, user, device),
    };
    if user.is_none() && device.is_none() {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("name the loan: --user USERNAME and/or --device UDID-OR-SERIAL"),
        ));
    }
    let matches = |loan: &badgedock::checkout::LoanView| {
        user.as_deref().is_none_or(|u| loan.username.same_as(u))
            && device
                .as_deref()
                .is_none_or(|d| loan.device.id.eq_ignore_ascii_case(d.trim()))
    };
    let before = status_snapshot(&config).await?;
    let loans: Vec<String> = before
        .loans
        .iter()
        .filter(|loan| matches(loan))
        .map(|loan| {
            format!(
                "{} ({}) with {}",
                loan.device_name.as_deref().unwrap_or(&loan.device.id),
                loan.device.id,
                loan.holder
            )
        })
        .collect();
    if loans.is_empty() {
        return Err(Failure::new(
            exit::REFUSED,
            anyhow::anyhow!("no open loan matches: `badgedock status` lists the loans"),
        ));
    }
    let user = user.map(badgedock::domain::Username::new);
    let admin = if lost {
        badgedock::checkout::AdminCommand::MarkLost { user, device }
    } else {
        badgedock::checkout::AdminCommand::CloseLoan { user, device }
    };
    match control_request(&config, Request::Admin { admin }, Duration::from_secs(5)).await? {
        Response::Error { message } if message.starts_with("permission denied") => {
            return Err(Failure::new(exit::NOPERM, anyhow::anyhow!(message)))
        }
        Response::Error { message } => {
            return Err(Failure::new(exit::REFUSED, anyhow::anyhow!(message)))
        }
        _ => {}
    }
    for loan in loans {
        out(&if lost {
            format!("marked lost: {loan}")
        } else {
            format!("loan closed: {loan}")
        });
    }
    Ok(())
}

/// `admin mark-broken` and `clear-broken`: checked against `status` first, then sent; the
/// answer is read back from `status`.
async fn admin_broken(config: &Path, slot: &str, broken: bool) -> Result<(), Failure> {
    use badgedock::checkout::SlotState;
    let slot = badgedock::domain::SlotLabel::new(slot.trim());
    let before = status_snapshot(config).await?;
    let Some(view) = before.slots.iter().find(|s| s.label == slot) else {
        let labels: Vec<&str> = before.slots.iter().map(|s| s.label.as_str()).collect();
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("no slot {slot}: the slots are {}", labels.join(", ")),
        ));
    };
    let refusal = match (broken, &view.state) {
        (_, SlotState::Empty) => Some(format!("slot {slot} is empty")),
        (true, SlotState::Broken) => Some(format!("slot {slot} is already marked broken")),
        (true, SlotState::Foreign) => Some(format!(
            "slot {slot} holds a phone that is not the station's"
        )),
        (false, state) if *state != SlotState::Broken => {
            Some(format!("slot {slot} is not marked broken"))
        }
        _ => None,
    };
    if let Some(refusal) = refusal {
        return Err(Failure::new(exit::REFUSED, anyhow::anyhow!(refusal)));
    }
    let admin = if broken {
        badgedock::checkout::AdminCommand::MarkBroken { slot: slot.clone() }
    } else {
        badgedock::checkout::AdminCommand::ClearBroken { slot: slot.clone() }
    };
    match control_request(config, Request::Admin { admin }, Duration::from_secs(5)).await? {
        Response::Error { message } if message.starts_with("permission denied") => {
            return Err(Failure::new(exit::NOPERM, anyhow::anyhow!(message)))
        }
        Response::Error { message } => {
            return Err(Failure::new(exit::REFUSED, anyhow::anyhow!(message)))
        }
        _ => {}
    }
    out(&if broken {
        format!("slot {slot}: marked broken; out of use until `badgedock admin clear-broken --slot {slot}`")
    } else {
        format!("slot {slot}: back in use")
    });
    Ok(())
}

async fn status_snapshot(config: &Path) -> Result<badgedock::checkout::Snapshot, Failure> {
    match control_request(config, Request::Status, Duration::from_secs(5)).await? {
        Response::Snapshot { snapshot } => Ok(*snapshot),
        _ => Err(Failure::new(
            exit::SOFTWARE,
            anyhow::anyhow!("unexpected answer from the daemon"),
        )),
    }
}

async fn accept_store(config: &Path) -> Result<(), Failure> {
    let config = load_config(config)?;
    let store_file = daemon::store_path(&config);
    let _lock =
        daemon::lock_store(&store_file).map_err(|err| Failure::new(exit::UNAVAILABLE, err))?;
    let store = badgedock::store::Store::open(&store_file)
        .map_err(|err| Failure::new(exit::SOFTWARE, err))?;
    store
        .adopt_mark(daemon::mark_path(&config), true)
        .await
        .map_err(|err| Failure::new(exit::SOFTWARE, err))?;
    let identity = store
        .identity()
        .await
        .map_err(|err| Failure::new(exit::SOFTWARE, err))?;
    out(&format!(
        "the store {} is accepted as the station's store ({} transitions); start the daemon",
        store_file.display(),
        identity.commits
    ));
    Ok(())
}

/// An answer this command does not expect, named by its kind only.
fn unexpected(response: &Response) -> Failure {
    let kind = match response {
        Response::Snapshot { .. } => "a status snapshot",
        Response::Decision { .. } => "a tap decision",
        Response::Done { .. } => "a confirmation",
        Response::Error { .. } => "an error",
    };
    Failure::new(
        exit::SOFTWARE,
        anyhow::anyhow!(
            "the daemon answered with {kind}, which this command does not expect: are badgedock and the daemon the same version?"
        ),
    )
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
    let config = load_client(config)?;
    let ascii = ascii || std::env::var("TERM").is_ok_and(|term| term == "linux");
    let options = badgedock::dashboard::DashboardOptions {
        ascii,
        admin: config.dashboard_admin,
        demo_keys: false,
    };
    badgedock::dashboard::run_for_socket(config.control_socket.clone(), options)
        .await
        .map_err(Failure::from)
}

async fn readers(watch: bool, config: Option<&Path>) -> Result<(), Failure> {
    let configured = match config {
        Some(path) => {
            let env = LoadEnv {
                credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            };
            config::load(path, &env)?.readers
        }
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
    reenrol_after_ms: u64,
    per_second: Option<u32>,
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
        reenrol_after: (reenrol_after_ms > 0).then(|| Duration::from_millis(reenrol_after_ms)),
        per_second,
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
    let config = load_client(config)?;
    let path = config.state_dir.join(daemon::STORE_FILE);
    badgedock::store::Store::open(&path)
        .with_context(|| format!("cannot open the station's store {}", path.display()))
        .map_err(|err| Failure::new(exit_code_for(&err), err))
}

async fn badges(command: BadgesCommand) -> Result<(), Failure> {
    match command {
        BadgesCommand::Import { config, file } => {
            let store = open_store(&config).await?;
            let bytes =
                badgedock::directory::read_badge_file(&file, config::DEFAULT_MAX_FILE_BYTES)
                    .with_context(|| format!("cannot read {}", file.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            let (rows, problems) = badgedock::directory::parse_badge_csv(&text);
            for row in rows.iter().filter(|row| row.normalised) {
                err_line(&format!(
                    "{}:{}: note: badge {} was written in lower case: normalised to upper case, as readers render hex badges",
                    file.display(),
                    row.line,
                    row.badge
                ));
            }
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
                other => Err(unexpected(&other)),
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
                    "{}\t{}\t{}\t{}",
                    badge.hint,
                    badge.user.username,
                    badge.user.display_name,
                    badge.source.as_str()
                ));
            }
            Ok(())
        }
        BadgesCommand::Remove { config, badge } => {
            let store = open_store(&config).await?;
            let number = badgedock::domain::BadgeNumber::new(
                config::normalise_badge(&badge).unwrap_or_else(|| badge.trim().to_string()),
            );
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

async fn backup(config: &Path, file: &Path) -> Result<(), Failure> {
    let store = open_store(config).await?;
    let pages = store
        .backup_to(file)
        .await
        .with_context(|| format!("cannot back up the store to {}", file.display()))
        .map_err(|err| Failure::new(exit_code_for(&err), err))?;
    out(&format!(
        "backed up {} ({pages} pages) to {}; keep station.key from the state folder apart from it: without the key the local badges cannot be matched",
        store.path().display(),
        file.display()
    ));
    Ok(())
}

async fn audit_verify(config: &Path) -> Result<(), Failure> {
    let store = open_store(config).await?;
    let verification = store
        .verify_audit()
        .await
        .context("cannot read the audit log")?;
    let from = match verification.anchor_seq {
        Some(seq) => format!("from the retention anchor after row {seq}"),
        None => "from the first row".to_string(),
    };
    match verification.problem {
        None => {
            out(&format!(
                "audit chain ok: {} rows {from}, last row {}",
                verification.n_rows,
                verification
                    .head_seq
                    .map(|seq| seq.to_string())
                    .unwrap_or_else(|| "none".into())
            ));
            Ok(())
        }
        Some(problem) => Err(Failure::new(
            exit::DATAERR,
            anyhow::anyhow!(
                "the audit chain is broken at row {}: {problem} ({} rows before it verified {from}); keep this file as evidence and compare with the SIEM's copy",
                problem.seq(),
                verification.n_rows
            ),
        )),
    }
}

async fn audit_prune(config_path: &Path) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let Some(retention) = config.audit.retention else {
        out("[audit] retention-days is not set: everything is kept");
        return Ok(());
    };
    let store = open_store(config_path).await?;
    let now = badgedock::domain::Timestamp(chrono::Utc::now().timestamp_millis());
    let before = badgedock::domain::Timestamp(
        now.0 - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
    );
    match store
        .prune_audit(before, now)
        .await
        .context("cannot apply the audit retention")?
    {
        Ok(pruned) => {
            out(&format!(
                "removed {} audit rows older than {} days{}",
                pruned.n_removed,
                retention.as_secs() / 86_400,
                pruned
                    .anchor_seq
                    .map(|seq| format!("; the chain now starts after row {seq}"))
                    .unwrap_or_default()
            ));
            Ok(())
        }
        Err(problem) => Err(Failure::new(
            exit::DATAERR,
            anyhow::anyhow!(
                "nothing removed: the audit chain is broken at row {}: {problem}; keep this file as evidence",
                problem.seq()
            ),
        )),
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
