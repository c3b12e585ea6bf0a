//! `bulletin preview --serve`: a page on 127.0.0.1 that shows what one member will get — the
//! HTML at desktop and phone widths and in dark mode, the text part, headers, raw MIME, sizes
//! and `check`'s findings — and rebuilds whenever the newsletter, a list, the settings or an
//! image changes, telling the page to reload over server-sent events. A broken edit shows its
//! error above the last good render; nothing the user writes stops the server.

mod page;
mod server;
mod view;
mod watch;

pub(crate) use server::{Options, serve};
pub(crate) use view::Inputs;
