//! Hand-written regression scenarios, one per defect class the simulator found.
