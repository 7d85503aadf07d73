/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * What the transport modes cost (tests/lab/PROTOCOL.md section 5): without it the stand-in moves bytes at memory
 * speed and a product that keeps no link busy looks fast. Per mode (nbd, nbdssl, hotadd, san): a latency per call,
 * a bandwidth cap per connection (one disk handle: VDDK opens one NFC connection per disk) and per host (one link
 * shared by every handle of the process), NBD's 64 KiB NFC fragments, the NFC connection and memory limits, the
 * hotadd proxy and its attach cost, the snapshot SAN/hotadd writes need, and a cost per QueryAllocatedBlocks.
 *
 * The model is OFF unless LABVDDK_TRANSPORT_PROFILE or a per-mode knob turns it on: then it costs nothing and the
 * suite's timing does not change. Bandwidth is modelled as a timeline per link: a transfer of B bytes occupies
 * the link for B / rate from the later of "ready" (submission + latency) and the end of the previous transfer, and
 * the caller sleeps until it ends; so a link never carries more than its rate, and pipelined requests overlap their
 * latency (as asynchronous NBD I/O does) while synchronous ones pay it each time.
 *
 * Thread-safety: the configuration and the link timelines are guarded by one mutex; counters are atomics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "standin.h"

#define NFC_FRAGMENT 65536ULL      /* VDDK over NBD/NBDSSL moves data in NFC messages of 64 KiB */
#define MIB (1024.0 * 1024.0)

static const char *const mode_names[LAB_MODE_COUNT] = { "nbd", "nbdssl", "hotadd", "san" };
static const char *const mode_env[LAB_MODE_COUNT] = { "NBD", "NBDSSL", "HOTADD", "SAN" };

struct mode_cost {
    long long latency_ns;          /* per call (a round trip to the host) */
    double conn_bps, host_bps;     /* bytes per second; 0 = no cap */
    long long fragment_ns;         /* per 64 KiB NFC fragment (nbd, nbdssl) */
    long long attach_ns;           /* hotadd: reconfiguring the proxy VM to attach (and again to detach) a disk */
};

static struct transport_config {
    char profile[32];
    struct mode_cost mode[LAB_MODE_COUNT];
    long long qab_ns;              /* per QueryAllocatedBlocks call, on top of the mode's latency */
    long nfc_max_connections;      /* 0 = unlimited */
    long long nfc_memory, nfc_connection_memory;   /* bytes; 0 = unlimited / free */
    int hotadd_proxy;              /* the process runs in a proxy VM that can hot-add the disks */
    int san_access;                /* the process sees the datastores' LUNs */
    int async_depth;
} tc = { .async_depth = 32 };

static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t host_free_ns[LAB_MODE_COUNT];
static long nfc_connections;
static long long nfc_memory_used;

static struct {
    atomic_ullong opens[LAB_MODE_COUNT], bytes[LAB_MODE_COUNT], calls[LAB_MODE_COUNT];
    atomic_ullong host_busy_ns[LAB_MODE_COUNT], conn_busy_ns[LAB_MODE_COUNT];
    atomic_ullong first_ns[LAB_MODE_COUNT], last_ns[LAB_MODE_COUNT];
    atomic_ullong fragments, qab_calls, throttled, hotadd_attaches, nfc_refused, nfc_peak, nfc_memory_peak;
} st;

uint64_t lab_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t deadline)
{
    struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ULL), .tv_nsec = (long)(deadline % 1000000000ULL) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

const char *lab_mode_name(int mode)
{
    return mode >= 0 && mode < LAB_MODE_COUNT ? mode_names[mode] : "none";
}

static int mode_of(const char *name)
{
    for (int m = 0; m < LAB_MODE_COUNT; m++)
        if (strcmp(name, mode_names[m]) == 0)
            return m;
    return -1;
}

/* -- configuration --------------------------------------------------------------------------------------------- */

static double env_num(const char *name, double dflt, int *seen)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    *seen = 1;
    return strtod(v, NULL);
}

/* The "vmware-default" profile. VMware documents the NFC limits (52 connections through vCenter; 48 MB of NFC
 * buffers per ESXi host, 1 MB per I/O stream) and NBD's synchronous 64 KiB NFC messages; it documents no figures
 * for latency or bandwidth, so those are stated assumptions of a 10 GbE backup network (PROTOCOL.md lists them). */
static void vmware_default(struct transport_config *c)
{
    static const struct mode_cost dflt[LAB_MODE_COUNT] = {
        [LAB_MODE_NBD] = { 500000, 200 * MIB, 1100 * MIB, 0, 0 },
        [LAB_MODE_NBDSSL] = { 600000, 120 * MIB, 1100 * MIB, 0, 0 },
        [LAB_MODE_HOTADD] = { 100000, 400 * MIB, 1500 * MIB, 0, 3000000000LL },
        [LAB_MODE_SAN] = { 200000, 500 * MIB, 1600 * MIB, 0, 0 },
    };
    memcpy(c->mode, dflt, sizeof dflt);
    c->qab_ns = 2000000;
    c->nfc_max_connections = 52;
    c->nfc_memory = 48LL << 20;
    c->nfc_connection_memory = 1LL << 20;
}

VixError lab_transport_load(void)
{
    struct transport_config c;
    char name[64];
    int seen = 0;
    const char *profile = getenv("LABVDDK_TRANSPORT_PROFILE");

    memset(&c, 0, sizeof c);
    snprintf(c.profile, sizeof c.profile, "%s", profile && *profile ? profile : "off");
    if (strcmp(c.profile, "vmware-default") == 0) {
        vmware_default(&c);
    } else if (strcmp(c.profile, "off") != 0) {
        lab_warn("VixDiskLib: unknown LABVDDK_TRANSPORT_PROFILE \"%s\" (known: off, vmware-default)\n", c.profile);
        fprintf(stderr, "LABVDDK: unknown LABVDDK_TRANSPORT_PROFILE \"%s\" (known: off, vmware-default)\n", c.profile);
        return VIX_E_INVALID_ARG;
    }
    for (int m = 0; m < LAB_MODE_COUNT; m++) {
        struct mode_cost *mc = &c.mode[m];
        snprintf(name, sizeof name, "LABVDDK_%s_LATENCY_US", mode_env[m]);
        mc->latency_ns = (long long)(env_num(name, mc->latency_ns / 1e3, &seen) * 1e3);
        snprintf(name, sizeof name, "LABVDDK_%s_CONN_MIBPS", mode_env[m]);
        mc->conn_bps = env_num(name, mc->conn_bps / MIB, &seen) * MIB;
        snprintf(name, sizeof name, "LABVDDK_%s_HOST_MIBPS", mode_env[m]);
        mc->host_bps = env_num(name, mc->host_bps / MIB, &seen) * MIB;
        snprintf(name, sizeof name, "LABVDDK_%s_FRAGMENT_US", mode_env[m]);
        mc->fragment_ns = (long long)(env_num(name, mc->fragment_ns / 1e3, &seen) * 1e3);
        snprintf(name, sizeof name, "LABVDDK_%s_ATTACH_US", mode_env[m]);
        mc->attach_ns = (long long)(env_num(name, mc->attach_ns / 1e3, &seen) * 1e3);
    }
    c.qab_ns = (long long)(env_num("LABVDDK_QAB_US", c.qab_ns / 1e3, &seen) * 1e3);
    c.nfc_max_connections = (long)env_num("LABVDDK_NFC_MAX_CONNECTIONS", c.nfc_max_connections, &seen);
    c.nfc_memory = (long long)(env_num("LABVDDK_NFC_MEMORY_KIB", c.nfc_memory / 1024.0, &seen) * 1024);
    c.nfc_connection_memory = (long long)(env_num("LABVDDK_NFC_CONNECTION_KIB", c.nfc_connection_memory / 1024.0,
                                                  &seen) * 1024);
    c.hotadd_proxy = env_num("LABVDDK_HOTADD_PROXY", 0, &seen) != 0;
    c.san_access = env_num("LABVDDK_SAN_ACCESS", 0, &seen) != 0;
    c.async_depth = (int)env_num("LABVDDK_ASYNC_DEPTH", 32, &seen);
    if (c.async_depth < 1)
        c.async_depth = 1;
    pthread_mutex_lock(&tmu);
    tc = c;
    pthread_mutex_unlock(&tmu);
    return VIX_OK;
}

int lab_async_depth(void)
{
    pthread_mutex_lock(&tmu);
    int depth = tc.async_depth;
    pthread_mutex_unlock(&tmu);
    return depth;
}

/* -- choosing the mode at Open --------------------------------------------------------------------------------- */

static void stat_max(atomic_ullong *slot, unsigned long long value)
{
    unsigned long long old = atomic_load(slot);
    while (value > old && !atomic_compare_exchange_weak(slot, &old, value))
        ;
}

/* VDDK tries the requested modes in order and uses the first one that works for this disk; NULL or "" means its
 * default order. An NFC refusal is final (the mode was usable, the host said no), as with real VDDK. */
VixError lab_transport_open(VixDiskLibHandle h, int writable)
{
    VixDiskLibConnection c = h->conn;
    char modes[128], why[512] = "";
    char *save = NULL, *tok;
    size_t used = 0;

    snprintf(modes, sizeof modes, "%s", c->requested_modes[0] ? c->requested_modes : "file:san:hotadd:nbdssl:nbd");
    pthread_mutex_lock(&tmu);
    struct transport_config cfg = tc;
    pthread_mutex_unlock(&tmu);
    for (tok = strtok_r(modes, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        int m = mode_of(tok);
        const char *reason = NULL;
        if (m < 0)
            reason = "not offered by the lab";
        else if (m == LAB_MODE_HOTADD && !cfg.hotadd_proxy)
            reason = "this is not a proxy VM that can hot-add the disk (LABVDDK_HOTADD_PROXY)";
        else if (m == LAB_MODE_SAN && !cfg.san_access)
            reason = "no SAN access to the datastore's LUN (LABVDDK_SAN_ACCESS)";
        else if ((m == LAB_MODE_HOTADD || m == LAB_MODE_SAN) && writable && !c->snapshot_ref)
            reason = "writing needs a snapshot of the VM (ConnectEx with snapshotRef)";
        if (reason) {
            used += (size_t)snprintf(why + used, used < sizeof why ? sizeof why - used : 0, "%s%s: %s",
                                     used ? "; " : "", tok, reason);
            if (used >= sizeof why)
                used = sizeof why - 1;
            continue;
        }
        if (m == LAB_MODE_NBD || m == LAB_MODE_NBDSSL) {
            pthread_mutex_lock(&tmu);
            int too_many = cfg.nfc_max_connections > 0 && nfc_connections >= cfg.nfc_max_connections;
            int no_memory = cfg.nfc_memory > 0 && nfc_memory_used + cfg.nfc_connection_memory > cfg.nfc_memory;
            if (!too_many && !no_memory) {
                nfc_connections++;
                nfc_memory_used += cfg.nfc_connection_memory;
                h->nfc_reserved = 1;
                stat_max(&st.nfc_peak, (unsigned long long)nfc_connections);
                stat_max(&st.nfc_memory_peak, (unsigned long long)nfc_memory_used);
            }
            long open_now = nfc_connections;
            long long memory_now = nfc_memory_used;
            pthread_mutex_unlock(&tmu);
            if (too_many || no_memory) {
                atomic_fetch_add(&st.nfc_refused, 1);
                lab_warn("VixDiskLib: NfcFssrvr_DiskOpen: received NFC error from server: NFC_NO_MEMORY (%s) while "
                         "opening %s: %ld NFC connection(s) open (at most %ld through vCenter), %lld of %lld bytes of "
                         "NFC buffers in use\n", too_many ? "connection limit" : "buffer memory", h->vmdk_path,
                         open_now, cfg.nfc_max_connections, memory_now, cfg.nfc_memory);
                return VIX_E_OUT_OF_MEMORY;
            }
        }
        if (m == LAB_MODE_HOTADD) {
            atomic_fetch_add(&st.hotadd_attaches, 1);
            if (cfg.mode[m].attach_ns > 0)
                sleep_until(lab_now_ns() + (uint64_t)cfg.mode[m].attach_ns);
        }
        h->mode = m;
        atomic_fetch_add(&st.opens[m], 1);
        return VIX_OK;
    }
    lab_warn("VixDiskLib: Cannot use mode %s to access %s: Cannot mount using this method. (%s)\n",
             c->requested_modes[0] ? c->requested_modes : "(default)", h->vmdk_path, why);
    return VIX_E_FILE_ACCESS_ERROR;
}

void lab_transport_close(VixDiskLibHandle h)
{
    pthread_mutex_lock(&tmu);
    long long attach_ns = h->mode == LAB_MODE_HOTADD ? tc.mode[LAB_MODE_HOTADD].attach_ns : 0;
    if (h->nfc_reserved) {
        nfc_connections--;
        nfc_memory_used -= tc.nfc_connection_memory;
        if (nfc_memory_used < 0)
            nfc_memory_used = 0;
        h->nfc_reserved = 0;
    }
    pthread_mutex_unlock(&tmu);
    if (attach_ns > 0)                 /* detaching the disk from the proxy VM is another reconfiguration */
        sleep_until(lab_now_ns() + (uint64_t)attach_ns);
}

/* -- costs of calls -------------------------------------------------------------------------------------------- */

/* One Read/Write (or asynchronous request submitted at submit_ns) of `bytes` on h: counts it, then sleeps until
 * the model says it has crossed the link. Called after the disk I/O, with no lock held. */
void lab_transport_charge(VixDiskLibHandle h, uint64_t bytes, uint64_t submit_ns)
{
    int m = h->mode;
    if (m < 0 || m >= LAB_MODE_COUNT)
        return;
    uint64_t fragments = m == LAB_MODE_NBD || m == LAB_MODE_NBDSSL ? (bytes + NFC_FRAGMENT - 1) / NFC_FRAGMENT : 0;
    atomic_fetch_add(&st.fragments, fragments);
    atomic_fetch_add(&st.bytes[m], bytes);
    atomic_fetch_add(&st.calls[m], 1);

    pthread_mutex_lock(&tmu);
    struct mode_cost mc = tc.mode[m];
    uint64_t ready = submit_ns + (uint64_t)mc.latency_ns + fragments * (uint64_t)mc.fragment_ns;
    uint64_t end = ready;
    if (mc.conn_bps > 0 && bytes) {
        uint64_t busy = (uint64_t)((double)bytes * 1e9 / mc.conn_bps);
        uint64_t start = ready > h->conn_free_ns ? ready : h->conn_free_ns;
        h->conn_free_ns = start + busy;
        end = h->conn_free_ns > end ? h->conn_free_ns : end;
        atomic_fetch_add(&st.conn_busy_ns[m], busy);
    }
    if (mc.host_bps > 0 && bytes) {
        uint64_t busy = (uint64_t)((double)bytes * 1e9 / mc.host_bps);
        uint64_t start = ready > host_free_ns[m] ? ready : host_free_ns[m];
        host_free_ns[m] = start + busy;
        end = host_free_ns[m] > end ? host_free_ns[m] : end;
        atomic_fetch_add(&st.host_busy_ns[m], busy);
    }
    pthread_mutex_unlock(&tmu);

    /* the earliest submission (threads may get here out of order): 0 means none yet */
    unsigned long long first = atomic_load(&st.first_ns[m]);
    while ((first == 0 || submit_ns < first) &&
           !atomic_compare_exchange_weak(&st.first_ns[m], &first, (unsigned long long)submit_ns))
        ;
    if (end > ready)
        atomic_fetch_add(&st.throttled, 1);
    if (end > lab_now_ns())
        sleep_until(end);
    stat_max(&st.last_ns[m], lab_now_ns());
}

/* A QueryAllocatedBlocks call on h: the mode's latency plus the query's own cost. */
void lab_transport_query(VixDiskLibHandle h)
{
    atomic_fetch_add(&st.qab_calls, 1);
    pthread_mutex_lock(&tmu);
    long long ns = tc.qab_ns + (h->mode >= 0 && h->mode < LAB_MODE_COUNT ? tc.mode[h->mode].latency_ns : 0);
    pthread_mutex_unlock(&tmu);
    if (ns > 0)
        sleep_until(lab_now_ns() + (uint64_t)ns);
}

/* -- statistics ------------------------------------------------------------------------------------------------ */

void lab_transport_reset_stats(void)
{
    for (int m = 0; m < LAB_MODE_COUNT; m++) {
        atomic_store(&st.opens[m], 0);
        atomic_store(&st.bytes[m], 0);
        atomic_store(&st.calls[m], 0);
        atomic_store(&st.host_busy_ns[m], 0);
        atomic_store(&st.conn_busy_ns[m], 0);
        atomic_store(&st.first_ns[m], 0);
        atomic_store(&st.last_ns[m], 0);
    }
    atomic_store(&st.fragments, 0);
    atomic_store(&st.qab_calls, 0);
    atomic_store(&st.throttled, 0);
    atomic_store(&st.hotadd_attaches, 0);
    atomic_store(&st.nfc_refused, 0);
    atomic_store(&st.nfc_peak, 0);
    atomic_store(&st.nfc_memory_peak, 0);
}

#define U(x) ((unsigned long long)atomic_load(&(x)))

void lab_transport_write_stats(FILE *f)
{
    fprintf(f, "nfc_fragments %llu\nqab_calls %llu\nthrottled_calls %llu\nhotadd_attaches %llu\nnfc_refused %llu\n"
            "nfc_connections_peak %llu\nnfc_memory_peak %llu\n", U(st.fragments), U(st.qab_calls), U(st.throttled),
            U(st.hotadd_attaches), U(st.nfc_refused), U(st.nfc_peak), U(st.nfc_memory_peak));
    for (int m = 0; m < LAB_MODE_COUNT; m++) {
        unsigned long long first = U(st.first_ns[m]), last = U(st.last_ns[m]);
        fprintf(f, "opens_%s %llu\ncalls_%s %llu\nbytes_%s %llu\nhost_busy_ns_%s %llu\nconn_busy_ns_%s %llu\n"
                "span_ns_%s %llu\n", mode_names[m], U(st.opens[m]), mode_names[m], U(st.calls[m]), mode_names[m],
                U(st.bytes[m]), mode_names[m], U(st.host_busy_ns[m]), mode_names[m], U(st.conn_busy_ns[m]),
                mode_names[m], last > first ? last - first : 0ULL);
    }
}
