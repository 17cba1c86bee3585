//! People in the loop, decided purely: gates that wait for a person's approval of a head
//! ([`gate`]) and the decision cards that ask a person to choose ([`card`]). The runner and the
//! commands feed these functions what they read from commits and the policy, and write what they
//! answer. Task envelopes ([`envelope`]) state a task for whoever takes it.

pub mod card;
pub mod envelope;
pub mod gate;
