//! Test certificates made with the `openssl` CLI: a CA, a server certificate it signs for
//! 127.0.0.1 and localhost (`ca.pem`, `server.pem`, `server.key`), and a CA that signed
//! nothing (`wrong-ca.pem`). Used by the LDAP and SMTP harnesses.

use std::path::Path;
use std::process::Command;

const MISSING: &str = "the TLS tests need openssl: run the README's test command (apt-get install -y --no-install-recommends openssl)";

/// A test CA, a server certificate it signs for 127.0.0.1 and localhost, and an
/// unrelated CA, all EC P-256 and valid for two days.
pub fn make_certificates(dir: &Path) {
    let ca_cnf = "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n[dn]\nCN = badgedock test CA\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n";
    let server_cnf = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n[v3_server]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier = keyid\n";
    std::fs::write(dir.join("ca.cnf"), ca_cnf).expect("ca.cnf");
    std::fs::write(dir.join("server.cnf"), server_cnf).expect("server.cnf");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (key, cert, subject) in [
        ("ca.key", "ca.pem", "/CN=badgedock test CA"),
        ("wrong-ca.key", "wrong-ca.pem", "/CN=some other CA"),
    ] {
        let args = [
            "-keyout", key, "-out", cert, "-days", "2", "-config", "ca.cnf", "-subj", subject,
        ];
        openssl(
            dir,
            &[&["req", "-x509", "-new"], &ec[..], &args[..]].concat(),
        );
    }
    openssl(
        dir,
        &[
            &["req", "-new"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-config",
                "server.cnf",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.cnf",
            "-extensions",
            "v3_server",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("cannot run openssl: {err}; {MISSING}"));
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
