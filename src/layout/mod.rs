//! OCI image layouts (image-spec `image-layout.md`): the [`staging`] every
//! output is written in, the one rule of which [`outputs`] may be written
//! and what may be changed in place, the blob [`store`] (blob writers that
//! name a blob only by its checked digest, verified blob readers), the
//! [`reader`] every command reads them through (tag and platform to image,
//! the graph under a descriptor), the [`tags`] a layout gives its image,
//! the [`scratch`] space commands work in, the [`durable`] commits every
//! output is renamed into place by, the [`temporaries`] outputs
//! are written as (named by run and
//! machine, those of dead runs removed, renamed into place without
//! replacing another's), and the layout of a layout's referrers,
//! [`nested`] in it.

pub mod durable;
pub mod nested;
pub mod outputs;
pub mod reader;
pub mod scratch;
pub mod staging;
pub mod store;
pub mod tags;
pub mod temporaries;

pub use outputs::{check_may_change, check_output};
pub use reader::{Graph, Image, Layout};
pub use scratch::Scratch;
pub use staging::*;
pub use store::*;
pub use temporaries::{interrupted, remove_stale_temporaries, remove_unfinished, temporary_prefix};
