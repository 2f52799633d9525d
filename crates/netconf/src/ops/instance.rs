//! Instance operations (gnt-instance); see issue 3.
