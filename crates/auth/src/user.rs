//! The authenticated user, inserted into request extensions.

use std::collections::BTreeMap;

/// `system:anonymous`.
pub const ANONYMOUS: &str = "system:anonymous";
/// Group of every anonymous request.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// Group added to every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Members are allowed without a SubjectAccessReview (X5).
pub const MASTERS_GROUP: &str = "system:masters";

/// Who made the request, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User name (`system:anonymous` when unauthenticated).
    pub name: String,
    /// UID, often empty.
    pub uid: String,
    /// Groups, including `system:authenticated` or `system:unauthenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (keys lower-case).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
            ..Self::default()
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Go's `AuthenticatedGroupAdder`: adds `system:authenticated` unless the user is
    /// anonymous or already carries one of the two "all" groups.
    pub(crate) fn with_authenticated_group(mut self) -> Self {
        if self.name != ANONYMOUS
            && !self.in_group(AUTHENTICATED_GROUP)
            && !self.in_group(UNAUTHENTICATED_GROUP)
        {
            self.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        self
    }
}
