//! Badge directories: file, LDAP, HTTP. SKELETON: filled in by the identity work (issue 7).
