//! The Workspace ONE UEM simulator (`badgedock uem-sim`). SKELETON: filled in by the Workspace ONE work (issue 3).
