//! Workspace ONE UEM client. SKELETON: filled in by the Workspace ONE work (issue 3).
