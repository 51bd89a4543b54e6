/* The agent's D-Bus API: peer to peer over a private socket, and on the system bus (docs/dbus.md) */
#pragma once

/*
 * In local mode jumpstarterd listens on a UNIX socket (jumpstarterd --listen PATH) and speaks
 * D-Bus peer to peer on every accepted connection (no bus daemon, no bus names; calls carry no
 * destination). jumpstarter-fuse and jmp connect with sd_bus_set_address("unix:path=PATH").
 *
 * Object AGENT_OBJECT_PATH, interface AGENT_INTERFACE:
 *
 *   ListDuts() -> (as names)                     in config order, then those added at run time in
 *                                                the order they came
 *   DescribeDut(s dut) -> (a(ss) labels, a(ss) lease, s serial_path, t storage_size, u classes)
 *        labels sorted by key; lease: name, holder, selector, begin, end (ISO 8601 UTC, "" = none):
 *        the lease at the controller for a leased DUT (holder: the client), else the one local mode
 *        implies;
 *        serial_path: the pty slave path ("/dev/pts/N"), "" without serial;
 *        classes: bitmask of 1 << DriverClass (1 power, 2 serial, 4 storage)
 *   GetPower(s dut) -> (s state)                 "on", "off" or "unknown"
 *   SetPower(s dut, s action) -> ()              action "on", "off" or "cycle"; returns when the
 *                                                driver is done
 *   GetPowerReading(s dut) -> (d watts)          the power draw measured now; EOPNOTSUPP when the
 *                                                power driver does not measure (then DescribeDut's
 *                                                classes lack AGENT_DUT_POWER_READING), EIO when the
 *                                                meter failed
 *   OpenSerialLog(s dut) -> (h fd, t reader)     read end of a stream socket: everything the console
 *                                                printed that the ring still holds, then live output;
 *                                                each caller has its own position; a reader that falls
 *                                                more than the ring behind skips ahead. What the ring
 *                                                holds is in the socket before the reply, as far as
 *                                                it fits
 *   SerialLogSync(s dut, t reader) -> ()         pushes into the reader's socket what the console has
 *                                                printed so far and it has not had yet, as far as the
 *                                                socket takes it, then replies: a reader that finds
 *                                                its socket empty after the reply is at the end
 *   SerialLogStat(s dut) -> (t bytes, t modified_usec)
 *                                                bytes the console printed since the lease began
 *                                                (including those the ring dropped) and the
 *                                                CLOCK_REALTIME usec of the newest one (0 = none yet)
 *   OpenStorage(s dut, b writable) -> (h fd, t size, t session)
 *                                                fd opened O_RDWR or O_RDONLY, for pread/pwrite/fsync;
 *                                                for a user on the system bus instead a socket that
 *                                                speaks the block protocol (block-protocol.h) and is
 *                                                shut down when the session or lease ends;
 *                                                session != 0, open until CloseStorage(session) or
 *                                                until the caller's connection ends. Storage behind a
 *                                                mux is switched to the host before the reply (EIO if
 *                                                the switch fails) and back to the DUT when its last
 *                                                session closes. While a writable session, or any
 *                                                session of storage behind a mux, is open the DUT
 *                                                cannot be powered on
 *   CloseStorage(t session) -> ()               every session is closed, read-only ones too
 *   ListGpio(s dut) -> (as lines)                the DUT's GPIO line names, in config order (none: empty)
 *   GetGpio(s dut, s line) -> (b value)          the line's logical value (active_low applied)
 *   SetGpio(s dut, s line, b value) -> ()        drives the line; returns when it is set.
 *                                                ENOENT for a line the DUT does not have
 *   ReleaseDut(s dut) -> ()                      ends the lease behind a leased DUT (agent role: DELETE
 *                                                of the lease at the controller); returns once it has
 *                                                ended, and the DUT is gone by then (DutRemoved came
 *                                                before the reply). EPERM ("not a leased DUT") for a
 *                                                DUT of jumpstarterd's own ExporterConfig, ENOENT for
 *                                                none; the controller's error otherwise (EHOSTDOWN
 *                                                while it is unreachable, ...)
 *
 *   GetDutAccess(s dut) -> (b leased, u holder_uid, u share_gid, s lease)
 *                                                whose the DUT is: leased (on the system bus, Leases1)
 *                                                by holder_uid, shared with the members of share_gid
 *                                                ((u) -1: no share group); not leased: uids -1 and
 *                                                lease "". The file view owns the DUT's files so.
 *   SetPowerAs(u uid, s dut, s action), OpenSerialLogAs(u uid, s dut), SerialLogSyncAs(u uid, s dut,
 *   t reader), OpenStorageAs(u uid, s dut, b writable), SetGpioAs(u uid, s dut, s line, b value),
 *   ReleaseDutAs(u uid, s dut)
 *                                                as the methods without "As", on behalf of uid (the
 *                                                uid of a FUSE request): only for a caller that is
 *                                                root or the daemon's own user (else EPERM). Then
 *                                                uid must hold the DUT's lease (or be in the share
 *                                                group), else EACCES; a DUT that nobody leased is
 *                                                root's. uid 0 or the caller's own uid: as without As.
 *
 * Signals:
 *   PowerChanged(s dut, s state)
 *   DutAdded(s dut)        a DUT appeared (a lease became active, or a config reload added it);
 *                          DescribeDut etc. work from now on
 *   DutChanged(s dut)      what DescribeDut answers for it changed: its lease (extended), or its
 *                          storage size (a remote DUT learns it when it first reaches its exporter);
 *                          describe it again
 *   DutRemoved(s dut)      a DUT went away (its lease ended, or a reload dropped it). Sent after
 *                          its storage sessions were ended (their fds stay usable only for a local
 *                          image; clients fail their open files with EIO) and its serial.log
 *                          readers were closed (they see end of file); calls naming it fail with
 *                          ENOENT. The same name may come back later as another DUT.
 * Signals go to every connection in the order things happen, interleaved with replies as they
 * are sent: a client that calls ListDuts and applies the signals that follow its reply in order
 * stays in step.
 *
 * Errors are errno values carried as "System.Error.E*" names with a message meant for a person
 * (sd_bus_error_set_errnof() on the daemon side, sd_bus_error_get_errno() on the client side):
 *   ENOENT  no such DUT              EINVAL  bad argument (unknown power action, ...)
 *   ECANCELED  a call that waited on a DUT that went away (or jumpstarterd is shutting down)
 *   ENODEV  an OpenStorage that waited for the mux when its DUT went away
 *   EBUSY   storage written while powered (any open of storage behind a mux), power on while
 *           storage is open for writing (or at all, behind a mux), a mounted block device written
 *   EOPNOTSUPP  the DUT has no driver of that class       EIO  the driver failed
 */

#define AGENT_OBJECT_PATH "/dev/jumpstarter/agent"
#define AGENT_INTERFACE   "dev.jumpstarter.Agent1"

/* On the system bus (docs/dbus.md): jumpstarterd --system-bus takes AGENT_BUS_NAME and serves
 * AGENT_INTERFACE and AGENT_LEASES_INTERFACE at AGENT_OBJECT_PATH, and one object per DUT under
 * AGENT_DUT_OBJECT_PREFIX (the name escaped with sd_bus_path_encode()) with AGENT_DUT_INTERFACE. */
#define AGENT_BUS_NAME           "dev.jumpstarter.Jumpstarter1"
#define AGENT_LEASES_INTERFACE   "dev.jumpstarter.Leases1"
#define AGENT_DUT_INTERFACE      "dev.jumpstarter.Dut1"
#define AGENT_DUT_OBJECT_PREFIX  "/dev/jumpstarter/dut"
/* polkit refused (or could not be asked); the message names the action. Reads back as EACCES. */
#define AGENT_ERROR_NOT_AUTHORIZED "dev.jumpstarter.Error.NotAuthorized"

#define DRIVER_CLASS_MASK(c) (1U << (c))
/* In DescribeDut's classes, beside the classes: the power driver measures (power.reading exists). */
#define AGENT_DUT_POWER_READING_BIT 31
#define AGENT_DUT_POWER_READING (1U << AGENT_DUT_POWER_READING_BIT)
