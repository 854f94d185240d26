//! The manual pages and shell completions, generated from the clap definitions (the
//! hidden `manpage` and `completions` subcommands) when the Debian package is built, so
//! they never drift from `--help`. Part of the binary, not the library: it only needs the
//! `clap::Command` that `main.rs` defines.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Sections of badgedock(1) that clap does not know about, in roff.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success
.TP
\fB1\fR
the tap was refused (unknown badge, limit reached, ambiguous user)
.TP
\fB65\fR
the store file is damaged (SQLite reports corruption), or \fBaudit verify\fR found the audit chain broken
.TP
\fB69\fR
the daemon is unreachable (is badgedock.service running?)
.TP
\fB70\fR
internal error
.TP
\fB77\fR
permission denied (group \fBbadgedock\fR, or the station's admin group for \fBtap\fR)
.TP
\fB78\fR
bad configuration; \fBbadgedock check\-config\fR lists every problem
.SH FILES
.TP
\fI/etc/badgedock/badgedock.toml\fR
the configuration (an example is in \fI/usr/share/doc/badgedock/examples/\fR)
.TP
\fI/etc/badgedock/client\-secret\fR, \fItenant\-code\fR, \fIapi\-password\fR, \fIldap\-password\fR
secret files, root only (0600); the service receives them through systemd credentials
.TP
\fI/var/lib/badgedock/\fR
the SQLite store: taps, loans, waiting Workspace ONE actions, the audit log
.TP
\fI/run/badgedock/control.sock\fR
the control socket used by \fBdashboard\fR, \fBstatus\fR and \fBtap\fR
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
log filter, e.g. \fBinfo\fR or \fBbadgedock=debug\fR
.TP
\fBCREDENTIALS_DIRECTORY\fR
where the config loader also looks for secret files (set by systemd)
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5);
the operator's guide in \fI/usr/share/doc/badgedock/README.md\fR
"#;

/// Writes badgedock.1 and one page per visible subcommand (badgedock-run.1, …) into
/// `dir`; returns the paths written.
pub fn write_pages(command: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();

    let top = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    top.render(&mut page)?;
    page.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    written.push(write_page(dir, &top.get_filename(), &page)?);

    let mut pending: Vec<clap::Command> = command.get_subcommands().cloned().collect();
    while let Some(sub) = pending.pop() {
        if sub.is_hide_set() {
            continue;
        }
        pending.extend(sub.get_subcommands().cloned());
        let man = clap_mangen::Man::new(sub);
        let mut page = Vec::new();
        man.render(&mut page)?;
        page.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBbadgedock\\fR(1)\n");
        written.push(write_page(dir, &man.get_filename(), &page)?);
    }
    written.sort();
    Ok(written)
}

fn write_page(dir: &Path, name: &str, page: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path)?;
    file.write_all(page)?;
    file.flush()?;
    Ok(path)
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(
    mut command: clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}
