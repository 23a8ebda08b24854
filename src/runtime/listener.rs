//! Accept shards: one `SO_REUSEPORT` listener per worker, so the kernel spreads new
//! connections across cores without a shared accept queue or lock.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `n` listeners on the same address. When the port is 0, the first bind picks it and
/// the others join that port. Bind errors surface here, on the main thread, before any
/// worker starts, so "port in use" is one clear start-up error.
pub fn bind_shards(
    addr: SocketAddr,
    listen_any: bool,
    n: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let l = if listen_any {
            bind_any(addr.port(), backlog)?
        } else {
            bind_one(addr, backlog, false)?
        };
        if addr.port() == 0 {
            addr.set_port(l.local_addr()?.port());
        }
        out.push(l);
    }
    Ok(out)
}

/// Fails with `AddrInUse` when anything already listens on `addr`, even a socket with
/// `SO_REUSEPORT` of the same user (which `bind_shards` alone would silently join, sharing
/// its traffic). A probe socket without `SO_REUSEPORT` cannot bind next to a listener.
pub fn ensure_free(addr: SocketAddr, listen_any: bool) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe_addr = if listen_any {
        SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), addr.port())
    } else {
        addr
    };
    let domain = if probe_addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = match Socket::new(domain, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if listen_any && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            return ensure_free(
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()),
                false,
            );
        }
        Err(e) => return Err(e),
    };
    if probe_addr.is_ipv6() && listen_any {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&probe_addr.into())
}

/// An empty listen address means every interface, as Go's `:8080`: dual-stack `[::]` where
/// the host has IPv6, else `0.0.0.0`.
fn bind_any(port: u16, backlog: u32) -> io::Result<std::net::TcpListener> {
    let v6 = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port);
    match bind_one(v6, backlog, true) {
        Ok(l) => Ok(l),
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => bind_one(
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            backlog,
            false,
        ),
        Err(e) => Err(e),
    }
}

fn bind_one(addr: SocketAddr, backlog: u32, dual_stack: bool) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_one_port() {
        let ls = bind_shards("127.0.0.1:0".parse().unwrap(), false, 3, 16).unwrap();
        let p = ls[0].local_addr().unwrap().port();
        assert!(p != 0);
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == p));
    }

    #[test]
    fn a_reuseport_listener_is_detected() {
        let ls = bind_shards("127.0.0.1:0".parse().unwrap(), false, 1, 16).unwrap();
        let addr = ls[0].local_addr().unwrap();
        assert_eq!(
            ensure_free(addr, false).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        drop(ls);
        assert!(ensure_free(addr, false).is_ok());
    }

    #[test]
    fn port_in_use_is_an_error() {
        // A plain listener without SO_REUSEPORT owns the port exclusively.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind_shards(addr, false, 1, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
