/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * The lab's stand-in libvixDiskLib.so.8 (in the spirit of nbdkit's tests/dummy-vddk.c): the VDDK C API over the
 * disk files of tests/lab/PROTOCOL.md, with VDDK's usage rules enforced and faults injectable (PROTOCOL.md
 * section 5). Only the documented API is implemented; the product loads it exactly as it loads a real VDDK.
 *
 * Behaviour choices where real VDDK leaves room (see README.md next to this file):
 * - A wrong thumbprint does not fail ConnectEx: the connection is made without sending credentials and every
 *   Open on it fails with VIX_E_FAIL (1), as real VDDK reports it. The log callback says why.
 * - Transport modes: each Open picks the first requested mode usable for the disk (transport.c): "nbd" and
 *   "nbdssl" always, "hotadd" and "san" when the run says the process may use them; none usable: Open fails with
 *   VIX_E_FILE_ACCESS_ERROR (13) "Cannot use mode ...", as real VDDK does. What each mode costs is modelled there.
 * - Async calls are queued per handle and served by the handle's worker thread (async.c), which invokes the
 *   callback (on a foreign thread, as with real VDDK); Wait() returns when every callback of the handle has returned.
 * - Rules cover the serialized group Open/Close/ConnectEx/Disconnect/Create/PrepareForAccess/EndAccess/Cleanup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "standin.h"

#define CONN_MAGIC   0x434f4e4eu
#define HANDLE_MAGIC 0x48414e44u
#define DEAD_MAGIC   0xdeaddeadu

/* -- process-wide state ---------------------------------------------------------------------------------------- */

static struct {
    atomic_int initialized;
    pid_t init_pid;
    VixDiskLibGenericLogFunc *log, *warn, *panic;
    pthread_mutex_t mu;              /* guards the registries and the config */
} g = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* What decides which calls fail: when any of it changes, the Nth-call counters start again (and only then). */
struct fault_config {
    long long fail_nth[2], fail_times[2];
    double fail_rate[2];
    unsigned long long seed;
    unsigned fail_code;
    int per_handle;                  /* LABVDDK_FAIL_SCOPE=handle: each handle counts its own calls */
    char run[128];                   /* LABVDDK_FAIL_RUN: a new value restarts the counters with the same faults */
};

static struct config {
    struct fault_config fault;
    long latency_us;
    char stats_path[4096];
    char gate_path[4096];            /* LABVDDK_GATE: after the first Read/Write, calls wait while this file exists */
} cfg;

/* Process-wide Nth-call counters: a reconnect (a product's retry) does not reset them, as a real transient
 * fault does not recur because the client reconnected. */
static atomic_ullong call_count[2];
static atomic_ullong stat_reads, stat_bytes_read, stat_writes, stat_bytes_written;
static atomic_ullong gated_calls;       /* Read/Write calls seen since LABVDDK_GATE was set (see gate()) */

static atomic_int serial_busy;
static const char *_Atomic serial_owner;

#define MAX_LIVE 4096
static void *live[MAX_LIVE];        /* connections and handles that exist */

/* -- logging and rules ----------------------------------------------------------------------------------------- */

static void call_log(VixDiskLibGenericLogFunc *fn, const char *fmt, va_list ap)
{
    if (fn && atomic_load(&g.initialized))
        fn(fmt, ap);
}

void lab_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_log(g.log, fmt, ap);
    va_end(ap);
}

void lab_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_log(g.warn, fmt, ap);
    va_end(ap);
}

VixError lab_rule_violation(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    const char *mode = getenv("LABVDDK_RULES");

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "LABVDDK RULE VIOLATION: %s\n", msg);
    fflush(stderr);
    if (!mode || strcmp(mode, "error") != 0)
        abort();
    return VIX_E_FAIL;
}

/* Every API call after InitEx: initialised, and in the process that initialised (fork-after-InitEx is misuse). */
static VixError check_init(const char *fn)
{
    if (!atomic_load(&g.initialized))
        return lab_rule_violation("%s called before VixDiskLib_InitEx (or after VixDiskLib_Exit)", fn);
    if (getpid() != g.init_pid)
        return lab_rule_violation("%s called in process %d, forked after VixDiskLib_InitEx in process %d", fn,
                                  (int)getpid(), (int)g.init_pid);
    return VIX_OK;
}

static atomic_long latency_us;      /* a copy of cfg.latency_us readable without the lock */

static void latency(void)
{
    long us = atomic_load(&latency_us);
    if (us > 0)
        usleep((useconds_t)us);
}

/* Enter the group of calls VDDK forbids to run concurrently; on a violation nothing is entered. */
static VixError serial_enter(const char *fn)
{
    VixError err = check_init(fn);
    if (err != VIX_OK)
        return err;
    if (atomic_exchange(&serial_busy, 1)) {
        const char *owner = atomic_load(&serial_owner);
        return lab_rule_violation("%s called while %s runs in another thread: Open/Close/ConnectEx/Disconnect/Create/"
                                  "PrepareForAccess/EndAccess/Cleanup must be serialized", fn, owner ? owner : "?");
    }
    atomic_store(&serial_owner, fn);
    latency();                       /* widens the window in which an unserialized caller is caught */
    return VIX_OK;
}

static void serial_exit(void)
{
    atomic_store(&serial_owner, NULL);
    atomic_store(&serial_busy, 0);
}

static void registry_add(void *p)
{
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < MAX_LIVE; i++) {
        if (!live[i]) {
            live[i] = p;
            break;
        }
    }
    pthread_mutex_unlock(&g.mu);
}

static int registry_remove(void *p)
{
    int found = 0;
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i] == p) {
            live[i] = NULL;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    return found;
}

static int registry_has(void *p, uint32_t magic)
{
    int found = 0;
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < MAX_LIVE && !found; i++)
        found = live[i] == p;
    pthread_mutex_unlock(&g.mu);
    return found && *(uint32_t *)p == magic;
}

static VixError check_conn(VixDiskLibConnection c, const char *fn)
{
    if (!c)
        return VIX_E_INVALID_ARG;
    if (!registry_has(c, CONN_MAGIC))
        return lab_rule_violation("%s called with a disconnected or unknown connection %p", fn, (void *)c);
    return VIX_OK;
}

static VixError check_handle(VixDiskLibHandle h, const char *fn)
{
    VixError err = check_init(fn);
    if (err != VIX_OK)
        return err;
    if (!h)
        return VIX_E_INVALID_ARG;
    if (!registry_has(h, HANDLE_MAGIC))
        return lab_rule_violation("%s called with a closed or unknown disk handle %p", fn, (void *)h);
    return VIX_OK;
}

/* Enter I/O on one handle; VDDK forbids concurrent calls on the same handle. */
static VixError io_enter(VixDiskLibHandle h, const char *fn)
{
    VixError err = check_handle(h, fn);
    if (err != VIX_OK)
        return err;
    if (atomic_exchange(&h->io_in_progress, 1))
        return lab_rule_violation("%s on disk handle %p (%s) while another call on the same handle is in progress: "
                                  "I/O on one handle must be serialized", fn, (void *)h, h->vmdk_path);
    return VIX_OK;
}

static void io_exit(VixDiskLibHandle h)
{
    atomic_store(&h->io_in_progress, 0);
}

/* -- lab knobs (PROTOCOL.md section 5) ------------------------------------------------------------------------- */

static long long env_ll(const char *name, long long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoll(v, NULL, 10) : dflt;
}

static double env_double(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strtod(v, NULL) : 0.0;
}

/* Read the knobs (InitEx, every ConnectEx). `initial`: InitEx, where every counter starts from zero. */
static VixError load_config(int initial)
{
    struct config c;
    const char *stats = getenv("LABVDDK_STATS");
    const char *scope = getenv("LABVDDK_FAIL_SCOPE");
    const char *run = getenv("LABVDDK_FAIL_RUN");

    memset(&c, 0, sizeof c);
    c.fault.fail_nth[KIND_READ] = env_ll("LABVDDK_FAIL_READ_NTH", 0);
    c.fault.fail_nth[KIND_WRITE] = env_ll("LABVDDK_FAIL_WRITE_NTH", 0);
    c.fault.fail_times[KIND_READ] = env_ll("LABVDDK_FAIL_READ_TIMES", 1);
    c.fault.fail_times[KIND_WRITE] = env_ll("LABVDDK_FAIL_WRITE_TIMES", 1);
    c.fault.fail_rate[KIND_READ] = env_double("LABVDDK_FAIL_READ_RATE");
    c.fault.fail_rate[KIND_WRITE] = env_double("LABVDDK_FAIL_WRITE_RATE");
    c.fault.seed = (unsigned long long)env_ll("LABVDDK_FAIL_SEED", 0);
    c.fault.fail_code = (unsigned)env_ll("LABVDDK_FAIL_CODE", VIX_E_FAIL);
    if (scope && *scope && strcmp(scope, "handle") != 0 && strcmp(scope, "process") != 0) {
        lab_warn("VixDiskLib: LABVDDK_FAIL_SCOPE must be \"process\" or \"handle\", not \"%s\"\n", scope);
        return VIX_E_INVALID_ARG;
    }
    c.fault.per_handle = scope && strcmp(scope, "handle") == 0;
    snprintf(c.fault.run, sizeof c.fault.run, "%s", run ? run : "");
    c.latency_us = (long)env_ll("LABVDDK_LATENCY_US", 0);
    const char *gate_path = getenv("LABVDDK_GATE");
    snprintf(c.gate_path, sizeof c.gate_path, "%s", gate_path ? gate_path : "");
    snprintf(c.stats_path, sizeof c.stats_path, "%s", stats ? stats : "");
    VixError err = lab_transport_load();
    if (err != VIX_OK)
        return err;
    pthread_mutex_lock(&g.mu);
    if (initial || strcmp(c.stats_path, cfg.stats_path) != 0) {
        /* a new STATS file starts from zero: counters cover the calls since InitEx or since the path changed */
        atomic_store(&stat_reads, 0);
        atomic_store(&stat_bytes_read, 0);
        atomic_store(&stat_writes, 0);
        atomic_store(&stat_bytes_written, 0);
        lab_transport_reset_stats();
        lab_async_reset_stats();
    }
    if (initial || strcmp(c.gate_path, cfg.gate_path) != 0)
        atomic_store(&gated_calls, 0);      /* a new gate lets its own first call through */
    if (initial || memcmp(&c.fault, &cfg.fault, sizeof c.fault) != 0) {
        atomic_store(&call_count[KIND_READ], 0);
        atomic_store(&call_count[KIND_WRITE], 0);
    }
    cfg = c;
    atomic_store(&latency_us, c.latency_us);
    pthread_mutex_unlock(&g.mu);
    return VIX_OK;
}

static void write_stats(void)
{
    char path[4096], tmp[4200];
    FILE *f;

    pthread_mutex_lock(&g.mu);
    snprintf(path, sizeof path, "%s", cfg.stats_path);
    pthread_mutex_unlock(&g.mu);
    if (!path[0])
        return;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "we");
    if (!f)
        return;
    fprintf(f, "reads %llu\nbytes_read %llu\nwrites %llu\nbytes_written %llu\n",
            (unsigned long long)atomic_load(&stat_reads), (unsigned long long)atomic_load(&stat_bytes_read),
            (unsigned long long)atomic_load(&stat_writes), (unsigned long long)atomic_load(&stat_bytes_written));
    lab_transport_write_stats(f);
    lab_async_write_stats(f);
    if (fclose(f) == 0)
        rename(tmp, path);
    else
        unlink(tmp);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The injected failure code for this Read/Write call on h, or VIX_OK. */
static VixError injected_fault(VixDiskLibHandle h, int kind)
{
    pthread_mutex_lock(&g.mu);
    unsigned long long n = cfg.fault.per_handle ? ++h->fail_count[kind] : atomic_fetch_add(&call_count[kind], 1) + 1;
    long long nth = cfg.fault.fail_nth[kind], times = cfg.fault.fail_times[kind];
    double rate = cfg.fault.fail_rate[kind];
    unsigned long long seed = cfg.fault.seed;
    unsigned code = cfg.fault.fail_code;
    pthread_mutex_unlock(&g.mu);
    int fail = nth > 0 && n >= (unsigned long long)nth && (times <= 0 || n < (unsigned long long)(nth + times));

    if (!fail && rate > 0) {
        uint64_t x = splitmix64(seed ^ ((uint64_t)(kind + 1) << 56) ^ splitmix64(n));
        fail = (double)(x >> 11) * 0x1.0p-53 < rate;
    }
    if (!fail)
        return VIX_OK;
    lab_warn("VixDiskLib: injected failure of %s call %llu with error %u\n", kind == KIND_READ ? "read" : "write", n,
             code);
    return code;
}

/* -- init / exit / errors -------------------------------------------------------------------------------------- */

VixError VixDiskLib_InitEx(uint32_t majorVersion, uint32_t minorVersion, VixDiskLibGenericLogFunc *log,
                           VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic, const char *libDir,
                           const char *configFile)
{
    if (atomic_load(&g.initialized)) {
        if (getpid() != g.init_pid)
            return lab_rule_violation("VixDiskLib_InitEx called in process %d, forked after VixDiskLib_InitEx in "
                                      "process %d", (int)getpid(), (int)g.init_pid);
        return lab_rule_violation("VixDiskLib_InitEx called twice without VixDiskLib_Exit");
    }
    if (!log || !warn || !panic)
        return lab_rule_violation("VixDiskLib_InitEx called with a NULL log/warn/panic callback (VDDK's defaults are "
                                  "not thread-safe)");
    g.log = log;
    g.warn = warn;
    g.panic = panic;
    g.init_pid = getpid();
    VixError err = load_config(1);
    if (err != VIX_OK)
        return err;
    atomic_store(&g.initialized, 1);
    lab_log("VixDiskLib: VDDK lab stand-in initialised for API %u.%u, libDir %s, config %s (pid %d)\n", majorVersion,
            minorVersion, libDir ? libDir : "(none)", configFile ? configFile : "(none)", (int)g.init_pid);
    return VIX_OK;
}

void VixDiskLib_Exit(void)
{
    if (check_init("VixDiskLib_Exit") != VIX_OK)
        return;
    write_stats();
    lab_log("VixDiskLib: exit (pid %d)\n", (int)getpid());
    atomic_store(&g.initialized, 0);
}

static const struct {
    unsigned code;
    const char *text;
} error_texts[] = {
    { VIX_OK, "The operation was successful" },
    { VIX_E_FAIL, "Unknown error" },
    { VIX_E_OUT_OF_MEMORY, "Memory allocation failed: out of memory" },
    { VIX_E_INVALID_ARG, "One of the parameters was invalid" },
    { VIX_E_FILE_NOT_FOUND, "The system cannot find the file specified" },
    { VIX_E_OBJECT_IS_BUSY, "The object is busy" },
    { VIX_E_NOT_SUPPORTED, "The operation is not supported" },
    { VIX_E_FILE_ERROR, "A file error was encountered" },
    { VIX_E_DISK_FULL, "There is not enough space on the disk" },
    { VIX_E_CANCELLED, "The operation was canceled" },
    { VIX_E_FILE_READ_ONLY, "The file is write-protected" },
    { VIX_E_FILE_ALREADY_EXISTS, "The file already exists" },
    { VIX_E_FILE_ACCESS_ERROR, "You do not have access rights to this file" },
    { VIX_E_FILE_ALREADY_LOCKED, "The file is already in use" },
    { VIX_E_HOST_NOT_CONNECTED, "The host is not connected" },
    { VIX_E_AUTHENTICATION_FAIL, "Authentication failed" },
    { VIX_E_HOST_CONNECTION_LOST, "The connection to the host was lost" },
    { VIX_E_INVALID_HANDLE, "The handle is not a valid VIX object" },
    { VIX_E_VM_NOT_FOUND, "The virtual machine cannot be found" },
    { VIX_E_SNAPSHOT_NOTFOUND, "The snapshot was not found" },
    { VIX_E_HOST_TCP_CONN_LOST, "The network connection to the host was lost" },
    { VIX_E_DISK_INVAL, "The disk is invalid" },
    { VIX_E_DISK_OUTOFRANGE, "The requested sectors are out of range" },
    { VIX_E_DISK_CID_MISMATCH, "The disk content ID does not match its parent" },
    { VIX_E_CANNOT_CONNECT_TO_HOST, "Cannot connect to host" },
};

char *VixDiskLib_GetErrorText(VixError err, const char *locale)
{
    unsigned code = (unsigned)(err & 0xFFFF);
    (void)locale;
    for (size_t i = 0; i < sizeof error_texts / sizeof error_texts[0]; i++)
        if (error_texts[i].code == code)
            return strdup(error_texts[i].text);
    if (code >= 30001 && code <= 30202) {
        char buf[64];
        snprintf(buf, sizeof buf, "An HTTP error occurred (%u)", code);
        return strdup(buf);
    }
    return strdup("Unknown error");
}

void VixDiskLib_FreeErrorText(char *errMsg)
{
    free(errMsg);
}

VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void)
{
    return calloc(1, sizeof(VixDiskLibConnectParams));
}

/* Like real VDDK, frees only the structure: the strings it points to belong to the caller. */
void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *connectParams)
{
    free(connectParams);
}

const char *VixDiskLib_ListTransportModes(void)
{
    if (check_init("VixDiskLib_ListTransportModes") != VIX_OK)
        return NULL;
    return "file:san:hotadd:nbdssl:nbd";
}


/* -- connections ----------------------------------------------------------------------------------------------- */

static void url_encode(char *out, size_t outlen, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < outlen; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* "moref=vm-57" (possibly among other "key=value" parts separated by '&' or '?') -> malloc'd "vm-57". */
static char *parse_vm_moref(const char *vmx_spec)
{
    const char *p = vmx_spec ? strstr(vmx_spec, "moref=") : NULL;
    if (!p)
        return NULL;
    p += 6;
    size_t n = strcspn(p, "&?; ");
    return n ? strndup(p, n) : NULL;
}

/* The Authorization or Cookie header for the credentials in params (malloc'd), or NULL when unusable. */
static char *auth_header(const VixDiskLibConnectParams *params)
{
    if (params->credType == VIXDISKLIB_CRED_UID) {
        if (!params->creds.uid.userName || !params->creds.uid.password)
            return NULL;
        return lab_basic_auth(params->creds.uid.userName, params->creds.uid.password);
    }
    if (params->credType == VIXDISKLIB_CRED_SESSIONID && params->creds.sessionId.cookie) {
        const char *cookie = params->creds.sessionId.cookie;
        size_t len = strlen(cookie) + 64;
        char *header = malloc(len);
        if (header) {
            if (strncasecmp(cookie, "vmware_soap_session=", 20) == 0)
                snprintf(header, len, "Cookie: %s", cookie);
            else
                snprintf(header, len, "Cookie: vmware_soap_session=%s", cookie);
        }
        return header;
    }
    return NULL;
}

static const char *user_of(const VixDiskLibConnectParams *params)
{
    const char *user = params->credType == VIXDISKLIB_CRED_UID ? params->creds.uid.userName
                       : params->credType == VIXDISKLIB_CRED_SESSIONID ? params->creds.sessionId.userName : NULL;
    return user ? user : "(none)";
}

/* GET /lab/vddk for the VM (and snapshot); fills conn's datastore map when conn is given. */
static VixError lab_lookup(const VixDiskLibConnectParams *params, const char *vm, const char *snapshot,
                           VixDiskLibConnection conn)
{
    char query[1024], vm_enc[256], snap_enc[256], errbuf[512] = "";
    struct lab_http_result res;
    unsigned port = params->port ? params->port : 443;
    char *auth = auth_header(params);
    VixError err;

    if (!auth)
        return VIX_E_INVALID_ARG;
    url_encode(vm_enc, sizeof vm_enc, vm);
    if (snapshot) {
        url_encode(snap_enc, sizeof snap_enc, snapshot);
        snprintf(query, sizeof query, "/lab/vddk?vm=%s&snapshot=%s", vm_enc, snap_enc);
    } else {
        snprintf(query, sizeof query, "/lab/vddk?vm=%s", vm_enc);
    }
    lab_http_get(params->serverName, port, query, auth, &res, errbuf, sizeof errbuf);
    memset(auth, 0, strlen(auth));
    free(auth);
    switch (res.status) {
    case 200:
        err = VIX_OK;
        break;
    case -1:
        lab_warn("VixDiskLib: cannot connect to host %s:%u: %s\n", params->serverName, port, errbuf);
        err = VIX_E_CANNOT_CONNECT_TO_HOST;
        break;
    case 401:
        lab_warn("VixDiskLib: login to %s:%u as %s failed (HTTP %d)\n", params->serverName, port, user_of(params),
                 res.status);
        err = VIX_E_AUTHENTICATION_FAIL;
        break;
    case 404:
        lab_warn("VixDiskLib: %s:%u answered: %s (HTTP %d)\n", params->serverName, port, res.body ? res.body : "",
                 res.status);
        err = snapshot && res.body && strcasestr(res.body, "snapshot") ? VIX_E_SNAPSHOT_NOTFOUND : VIX_E_VM_NOT_FOUND;
        break;
    default:
        lab_warn("VixDiskLib: unexpected answer from %s:%u (HTTP %d)\n", params->serverName, port, res.status);
        err = VIX_E_FAIL;
    }
    if (err == VIX_OK && conn) {
        char *save = NULL, *line;
        for (line = strtok_r(res.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char name[512];
            int consumed = 0;
            line[strcspn(line, "\r")] = '\0';
            if (sscanf(line, "datastore %511s %n", name, &consumed) == 1 && consumed > 0 && line[consumed] &&
                conn->num_datastores < MAX_DATASTORES) {
                conn->datastores[conn->num_datastores].name = strdup(name);
                conn->datastores[conn->num_datastores].path = strdup(line + consumed);
                conn->num_datastores++;
            } else if (strncmp(line, "disk [", 6) == 0 && conn->num_disks < MAX_DATASTORES) {
                conn->disks[conn->num_disks++] = strdup(line + 5);
            }
        }
    }
    free(res.body);
    return err;
}

static void free_conn(VixDiskLibConnection c)
{
    if (!c)
        return;
    for (int i = 0; i < c->num_datastores; i++) {
        free(c->datastores[i].name);
        free(c->datastores[i].path);
    }
    for (int i = 0; i < c->num_disks; i++)
        free(c->disks[i]);
    free(c->server);
    free(c->vm_moref);
    free(c->snapshot_ref);
    c->magic = DEAD_MAGIC;
    free(c);
}

static VixError connect_locked(const VixDiskLibConnectParams *params, Bool readOnly, const char *snapshotRef,
                               const char *transportModes, VixDiskLibConnection *connection)
{
    char errbuf[512] = "";
    struct lab_http_result probe;
    VixError err;

    if (!params || !connection || !params->serverName)
        return VIX_E_INVALID_ARG;
    *connection = NULL;
    if (params->specType != VIXDISKLIB_SPEC_VMX) {
        lab_warn("VixDiskLib: the lab stand-in supports only VMX specs (specType %d given)\n", (int)params->specType);
        return VIX_E_NOT_SUPPORTED;
    }
    char *vm = parse_vm_moref(params->vmxSpec);
    if (!vm) {
        lab_warn("VixDiskLib: vmxSpec \"%s\" has no moref=vm-N\n", params->vmxSpec ? params->vmxSpec : "(null)");
        return VIX_E_INVALID_ARG;
    }
    unsigned port = params->port ? params->port : 443;
    lab_log("VixDiskLib: ConnectEx to %s:%u as %s for %s, snapshot %s, transport modes %s, %s\n", params->serverName,
            port, user_of(params), vm, snapshotRef ? snapshotRef : "(none)", transportModes ? transportModes : "(default)",
            readOnly ? "read-only" : "read-write");

    VixDiskLibConnection c = calloc(1, sizeof *c);
    if (!c) {
        free(vm);
        return VIX_E_OUT_OF_MEMORY;
    }
    c->magic = CONN_MAGIC;
    c->vm_moref = vm;
    c->server = strdup(params->serverName);
    c->snapshot_ref = snapshotRef ? strdup(snapshotRef) : NULL;
    c->read_only = readOnly != 0;
    snprintf(c->requested_modes, sizeof c->requested_modes, "%s", transportModes ? transportModes : "");

    /* the thumbprint first: credentials go only to the server the caller trusts */
    if (lab_http_get(params->serverName, port, NULL, NULL, &probe, errbuf, sizeof errbuf) != 0) {
        lab_warn("VixDiskLib: cannot connect to host %s:%u: %s\n", params->serverName, port, errbuf);
        free_conn(c);
        return VIX_E_CANNOT_CONNECT_TO_HOST;
    }
    if (!params->thumbPrint || strcasecmp(params->thumbPrint, probe.thumbprint) != 0) {
        lab_warn("VixDiskLib: the host certificate of %s:%u has the SHA-1 thumbprint %s, expected %s\n",
                 params->serverName, port, probe.thumbprint, params->thumbPrint ? params->thumbPrint : "(none)");
        c->thumbprint_mismatch = 1;
    } else {
        err = lab_lookup(params, vm, snapshotRef, c);
        if (err != VIX_OK) {
            free_conn(c);
            return err;
        }
    }
    registry_add(c);
    *connection = c;
    return VIX_OK;
}

VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *connectParams, Bool readOnly, const char *snapshotRef,
                              const char *transportModes, VixDiskLibConnection *connection)
{
    VixError err = serial_enter("VixDiskLib_ConnectEx");
    if (err != VIX_OK)
        return err;
    err = load_config(0);
    if (err == VIX_OK)
        err = connect_locked(connectParams, readOnly, snapshotRef, transportModes, connection);
    serial_exit();
    return err;
}

VixError VixDiskLib_Disconnect(VixDiskLibConnection connection)
{
    VixError err = serial_enter("VixDiskLib_Disconnect");
    if (err != VIX_OK)
        return err;
    err = check_conn(connection, "VixDiskLib_Disconnect");
    if (err == VIX_OK && atomic_load(&connection->open_handles) > 0)
        err = lab_rule_violation("VixDiskLib_Disconnect with %d disk handle(s) still open on the connection",
                                 atomic_load(&connection->open_handles));
    if (err == VIX_OK) {
        registry_remove(connection);
        free_conn(connection);
    }
    serial_exit();
    return err;
}

static VixError check_params(const VixDiskLibConnectParams *params, const char *identity, const char *fn)
{
    if (!params || !params->serverName || !identity || !*identity) {
        lab_warn("VixDiskLib: %s needs connection parameters and an identity\n", fn);
        return VIX_E_INVALID_ARG;
    }
    return VIX_OK;
}

static VixError access_call(const VixDiskLibConnectParams *params, const char *identity, const char *fn)
{
    VixError err = serial_enter(fn);
    if (err != VIX_OK)
        return err;
    err = check_params(params, identity, fn);
    char *vm = err == VIX_OK ? parse_vm_moref(params->vmxSpec) : NULL;
    if (err == VIX_OK && !vm)
        err = VIX_E_INVALID_ARG;
    if (err == VIX_OK) {
        lab_log("VixDiskLib: %s for %s by \"%s\"\n", fn, vm, identity);
        err = lab_lookup(params, vm, NULL, NULL);
    }
    free(vm);
    serial_exit();
    return err;
}

VixError VixDiskLib_PrepareForAccess(const VixDiskLibConnectParams *connectParams, const char *identity)
{
    return access_call(connectParams, identity, "VixDiskLib_PrepareForAccess");
}

VixError VixDiskLib_EndAccess(const VixDiskLibConnectParams *connectParams, const char *identity)
{
    return access_call(connectParams, identity, "VixDiskLib_EndAccess");
}

VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *connectParams, uint32_t *numCleanedUp, uint32_t *numRemaining)
{
    VixError err = serial_enter("VixDiskLib_Cleanup");
    if (err != VIX_OK)
        return err;
    if (!connectParams) {
        err = VIX_E_INVALID_ARG;
    } else {
        if (numCleanedUp)
            *numCleanedUp = 0;
        if (numRemaining)
            *numRemaining = 0;
    }
    serial_exit();
    return err;
}

/* -- disks ----------------------------------------------------------------------------------------------------- */

/* "[DS] dir/name.vmdk" -> descriptor and flat paths under the datastore's directory. */
static VixError resolve_path(VixDiskLibConnection c, const char *path, char **descriptor, char **flat)
{
    const char *close_bracket = path ? strchr(path, ']') : NULL;
    if (!path || path[0] != '[' || !close_bracket) {
        lab_warn("VixDiskLib: \"%s\" is not a datastore path \"[DS] dir/name.vmdk\"\n", path ? path : "(null)");
        return VIX_E_INVALID_ARG;
    }
    size_t ds_len = (size_t)(close_bracket - path - 1);
    const char *rel = close_bracket + 1;
    while (*rel == ' ')
        rel++;
    size_t rel_len = strlen(rel);
    if (rel_len < 6 || strcmp(rel + rel_len - 5, ".vmdk") != 0) {
        lab_warn("VixDiskLib: \"%s\" does not name a .vmdk\n", path);
        return VIX_E_INVALID_ARG;
    }
    for (int i = 0; i < c->num_datastores; i++) {
        if (strlen(c->datastores[i].name) == ds_len && strncmp(c->datastores[i].name, path + 1, ds_len) == 0) {
            const char *root = c->datastores[i].path;
            if (asprintf(descriptor, "%s/%s", root, rel) < 0)
                return VIX_E_OUT_OF_MEMORY;
            if (asprintf(flat, "%s/%.*s-flat.vmdk", root, (int)(rel_len - 5), rel) < 0) {
                free(*descriptor);
                return VIX_E_OUT_OF_MEMORY;
            }
            return VIX_OK;
        }
    }
    lab_warn("VixDiskLib: datastore \"%.*s\" of %s is unknown to VM %s\n", (int)ds_len, path + 1, path, c->vm_moref);
    return VIX_E_FILE_NOT_FOUND;
}

static void free_handle(VixDiskLibHandle h)
{
    lab_async_stop(h);
    lab_transport_close(h);
    lab_disk_close(h);
    pthread_mutex_destroy(&h->disk_mu);
    free(h->vmdk_path);
    free(h->descriptor_path);
    free(h->flat_path);
    free(h->cbt_path);
    free(h->snap_root);
    h->magic = DEAD_MAGIC;
    free(h);
}

static VixError open_locked(VixDiskLibConnection c, const char *path, uint32_t flags, VixDiskLibHandle *out)
{
    VixError err = check_conn(c, "VixDiskLib_Open");
    if (err != VIX_OK)
        return err;
    if (!out || !path)
        return VIX_E_INVALID_ARG;
    *out = NULL;
    if (c->thumbprint_mismatch) {
        lab_warn("VixDiskLib: cannot open %s: SSL thumbprint mismatch for host %s (%s)\n", path, c->server,
                 "the connection was made with a thumbprint that does not match the host certificate");
        return VIX_E_FAIL;
    }
    if (c->num_disks > 0) {
        int known = 0;
        for (int i = 0; i < c->num_disks && !known; i++)
            known = strcmp(c->disks[i], path) == 0;
        if (!known) {
            lab_warn("VixDiskLib: %s is not a disk of VM %s%s%s\n", path, c->vm_moref,
                     c->snapshot_ref ? " in snapshot " : "", c->snapshot_ref ? c->snapshot_ref : "");
            return VIX_E_FILE_NOT_FOUND;
        }
    }
    VixDiskLibHandle h = calloc(1, sizeof *h);
    if (!h)
        return VIX_E_OUT_OF_MEMORY;
    h->magic = HANDLE_MAGIC;
    h->fd = h->map_fd = h->data_fd = h->direct_fd = -1;
    h->mode = -1;
    pthread_mutex_init(&h->disk_mu, NULL);
    h->conn = c;
    h->vmdk_path = strdup(path);
    int writable = !c->read_only && !(flags & VIXDISKLIB_FLAG_OPEN_READ_ONLY);
    err = lab_transport_open(h, writable);
    if (err == VIX_OK)
        err = resolve_path(c, path, &h->descriptor_path, &h->flat_path);
    if (err != VIX_OK) {
        free_handle(h);
        return err;
    }
    if (asprintf(&h->cbt_path, "%s.cbt", h->flat_path) < 0 || asprintf(&h->snap_root, "%s.snap", h->flat_path) < 0) {
        free_handle(h);
        return VIX_E_OUT_OF_MEMORY;
    }
    /* SAN and hotadd restores write the disk while the VM has a snapshot (the connection names it): the lab then
     * writes the live disk, and the snapshot's copy-on-write view keeps what it had */
    h->snapshot_view = c->snapshot_ref != NULL && !(writable && (h->mode == LAB_MODE_SAN || h->mode == LAB_MODE_HOTADD));
    h->read_only = !writable || h->snapshot_view;
    err = lab_disk_open(h);
    if (err != VIX_OK) {
        free_handle(h);
        return err;
    }
    lab_log("VixDiskLib: opened %s (%s, %llu bytes, transport %s)\n", path, h->snapshot_view ? c->snapshot_ref : "live",
            (unsigned long long)h->capacity, lab_mode_name(h->mode));
    atomic_fetch_add(&c->open_handles, 1);
    registry_add(h);
    *out = h;
    return VIX_OK;
}

VixError VixDiskLib_Open(const VixDiskLibConnection connection, const char *path, uint32_t flags,
                         VixDiskLibHandle *diskHandle)
{
    VixError err = serial_enter("VixDiskLib_Open");
    if (err != VIX_OK)
        return err;
    err = open_locked(connection, path, flags, diskHandle);
    serial_exit();
    return err;
}

VixError VixDiskLib_Close(VixDiskLibHandle diskHandle)
{
    VixError err = serial_enter("VixDiskLib_Close");
    if (err != VIX_OK)
        return err;
    err = check_handle(diskHandle, "VixDiskLib_Close");
    if (err == VIX_OK && atomic_load(&diskHandle->async_pending) > 0)
        err = lab_rule_violation("VixDiskLib_Close of %s with %d asynchronous I/O(s) pending (call VixDiskLib_Wait first)",
                                 diskHandle->vmdk_path, atomic_load(&diskHandle->async_pending));
    if (err == VIX_OK && atomic_load(&diskHandle->io_in_progress))
        err = lab_rule_violation("VixDiskLib_Close of %s while another thread does I/O on it", diskHandle->vmdk_path);
    if (err == VIX_OK) {
        registry_remove(diskHandle);
        atomic_fetch_sub(&diskHandle->conn->open_handles, 1);
        free_handle(diskHandle);
        write_stats();
    }
    serial_exit();
    return err;
}

const char *VixDiskLib_GetTransportMode(VixDiskLibHandle diskHandle)
{
    if (check_handle(diskHandle, "VixDiskLib_GetTransportMode") != VIX_OK)
        return NULL;
    return lab_mode_name(diskHandle->mode);
}

VixError VixDiskLib_GetInfo(VixDiskLibHandle diskHandle, VixDiskLibInfo **info)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    VixError err = io_enter(diskHandle, "VixDiskLib_GetInfo");
    if (err != VIX_OK)
        return err;
    if (!info) {
        io_exit(diskHandle);
        return VIX_E_INVALID_ARG;
    }
    VixDiskLibInfo *i = calloc(1, sizeof *i);
    char *uuid = malloc(64);
    if (!i || !uuid) {
        free(i);
        free(uuid);
        io_exit(diskHandle);
        return VIX_E_OUT_OF_MEMORY;
    }
    uint64_t sectors = diskHandle->capacity / VIXDISKLIB_SECTOR_SIZE;
    i->capacity = sectors;
    i->biosGeo.heads = 255;
    i->biosGeo.sectors = 63;
    i->biosGeo.cylinders = (uint32_t)(sectors / (255 * 63) > 1024 ? 1024 : sectors / (255 * 63));
    i->physGeo.heads = 16;
    i->physGeo.sectors = 63;
    i->physGeo.cylinders = (uint32_t)(sectors / (16 * 63) > 16383 ? 16383 : sectors / (16 * 63));
    i->adapterType = (VixDiskLibAdapterType)lab_disk_adapter_type(diskHandle->descriptor_path);
    i->numLinks = 1;
    i->logicalSectorSize = VIXDISKLIB_SECTOR_SIZE;
    i->physicalSectorSize = VIXDISKLIB_SECTOR_SIZE;
    /* a stable per-disk uuid in VMware's "60 00 C2 ..." notation, derived from the flat file path */
    EVP_Digest(diskHandle->flat_path, strlen(diskHandle->flat_path), md, &mdlen, EVP_sha1(), NULL);
    md[0] = 0x60;
    md[1] = 0x00;
    md[2] = 0xC2;
    snprintf(uuid, 64, "%02x %02x %02x %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x %02x %02x", md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
    i->uuid = uuid;
    *info = i;
    io_exit(diskHandle);
    return VIX_OK;
}

void VixDiskLib_FreeInfo(VixDiskLibInfo *info)
{
    if (!info)
        return;
    free(info->parentFileNameHint);
    free(info->uuid);
    free(info);
}

static VixError check_range(VixDiskLibHandle h, VixDiskLibSectorType start, VixDiskLibSectorType n, const char *fn)
{
    uint64_t sectors = h->capacity / VIXDISKLIB_SECTOR_SIZE;
    if (start > sectors || n > sectors - start) {
        lab_warn("VixDiskLib: %s of sectors [%llu, +%llu) of %s is past its capacity of %llu sectors\n", fn,
                 (unsigned long long)start, (unsigned long long)n, h->vmdk_path, (unsigned long long)sectors);
        return VIX_E_DISK_OUTOFRANGE;
    }
    return VIX_OK;
}

/* The disk I/O of one request whose fault and read-only checks passed: the range, then the disk, then the stats.
 * The caller holds h->disk_mu. */
VixError lab_io(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n, uint8_t *buf,
                const char *fn)
{
    VixError err = buf || n == 0 ? check_range(h, start, n, fn) : VIX_E_INVALID_ARG;
    if (err != VIX_OK)
        return err;
    if (kind == KIND_READ) {
        err = lab_disk_read(h, start * VIXDISKLIB_SECTOR_SIZE, n * VIXDISKLIB_SECTOR_SIZE, buf);
        if (err == VIX_OK) {
            atomic_fetch_add(&stat_reads, 1);
            atomic_fetch_add(&stat_bytes_read, n * VIXDISKLIB_SECTOR_SIZE);
        }
    } else {
        err = lab_disk_write(h, start * VIXDISKLIB_SECTOR_SIZE, n * VIXDISKLIB_SECTOR_SIZE, buf);
        if (err == VIX_OK) {
            atomic_fetch_add(&stat_writes, 1);
            atomic_fetch_add(&stat_bytes_written, n * VIXDISKLIB_SECTOR_SIZE);
        }
    }
    return err;
}

/* What is decided when a Read/Write (or its async form) is called: an injected fault, a write to a read-only disk.
 * Counted at the call, so "the Nth call" means the Nth call the product made, async or not. */
/* LABVDDK_GATE: the first Read/Write goes through, every later one waits while the gate file exists, so that a
 * test sees a run in the middle of its transfer for as long as it needs to, without depending on timing. */
static void gate(void)
{
    char path[4096];
    pthread_mutex_lock(&g.mu);
    snprintf(path, sizeof path, "%s", cfg.gate_path);
    pthread_mutex_unlock(&g.mu);
    if (!path[0] || atomic_fetch_add(&gated_calls, 1) == 0)
        return;
    while (access(path, F_OK) == 0)
        usleep(10000);
}

static VixError admit(VixDiskLibHandle h, int kind, const char *fn)
{
    gate();
    latency();
    VixError err = injected_fault(h, kind);
    if (err == VIX_OK && kind == KIND_WRITE && h->read_only) {
        lab_warn("VixDiskLib: %s to %s, which is open read-only\n", fn, h->vmdk_path);
        err = VIX_E_FILE_READ_ONLY;
    }
    return err;
}

static VixError sync_io(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n,
                        uint8_t *buf, const char *fn)
{
    uint64_t submitted = lab_now_ns();
    VixError err = io_enter(h, fn);
    if (err != VIX_OK)
        return err;
    err = admit(h, kind, fn);
    if (err == VIX_OK) {
        pthread_mutex_lock(&h->disk_mu);
        err = lab_io(h, kind, start, n, buf, fn);
        pthread_mutex_unlock(&h->disk_mu);
        if (err == VIX_OK)
            lab_transport_charge(h, n * VIXDISKLIB_SECTOR_SIZE, submitted);
    }
    io_exit(h);
    return err;
}

static VixError async_io(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n,
                         uint8_t *buf, VixDiskLibCompletionCB callback, void *cbData, const char *fn)
{
    VixError err = io_enter(h, fn);
    if (err != VIX_OK)
        return err;
    if (!callback)
        err = VIX_E_INVALID_ARG;
    else
        err = lab_async_submit(h, kind, start, n, buf, callback, cbData, admit(h, kind, fn));
    io_exit(h);
    return err;
}

VixError VixDiskLib_Read(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector, VixDiskLibSectorType numSectors,
                         uint8_t *readBuffer)
{
    return sync_io(diskHandle, KIND_READ, startSector, numSectors, readBuffer, "VixDiskLib_Read");
}

VixError VixDiskLib_Write(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector, VixDiskLibSectorType numSectors,
                          const uint8_t *writeBuffer)
{
    return sync_io(diskHandle, KIND_WRITE, startSector, numSectors, (uint8_t *)writeBuffer, "VixDiskLib_Write");
}

VixError VixDiskLib_ReadAsync(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                              VixDiskLibSectorType numSectors, uint8_t *readBuffer, VixDiskLibCompletionCB callback,
                              void *cbData)
{
    return async_io(diskHandle, KIND_READ, startSector, numSectors, readBuffer, callback, cbData,
                    "VixDiskLib_ReadAsync");
}

VixError VixDiskLib_WriteAsync(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                               VixDiskLibSectorType numSectors, const uint8_t *writeBuffer,
                               VixDiskLibCompletionCB callback, void *cbData)
{
    return async_io(diskHandle, KIND_WRITE, startSector, numSectors, (uint8_t *)writeBuffer, callback, cbData,
                    "VixDiskLib_WriteAsync");
}

VixError VixDiskLib_Wait(VixDiskLibHandle diskHandle)
{
    VixError err = io_enter(diskHandle, "VixDiskLib_Wait");
    if (err != VIX_OK)
        return err;
    lab_async_wait(diskHandle);
    io_exit(diskHandle);
    return VIX_OK;
}

VixError VixDiskLib_Flush(VixDiskLibHandle diskHandle)
{
    VixError err = io_enter(diskHandle, "VixDiskLib_Flush");
    if (err != VIX_OK)
        return err;
    pthread_mutex_lock(&diskHandle->disk_mu);
    if (!diskHandle->read_only && fdatasync(diskHandle->fd) != 0)
        err = VIX_E_FILE_ERROR;
    pthread_mutex_unlock(&diskHandle->disk_mu);
    io_exit(diskHandle);
    return err;
}

#ifndef LAB_NO_QAB
VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                         VixDiskLibSectorType numSectors, VixDiskLibSectorType chunkSize,
                                         VixDiskLibBlockList **blockList)
{
    VixError err = io_enter(diskHandle, "VixDiskLib_QueryAllocatedBlocks");
    if (err != VIX_OK)
        return err;
    uint64_t sectors = diskHandle->capacity / VIXDISKLIB_SECTOR_SIZE;
    if (!blockList || chunkSize < VIXDISKLIB_MIN_CHUNK_SIZE || chunkSize % VIXDISKLIB_MIN_CHUNK_SIZE != 0 ||
        startSector % chunkSize != 0 ||
        (numSectors % chunkSize != 0 && startSector + numSectors != sectors) ||
        numSectors / chunkSize > VIXDISKLIB_MAX_CHUNK_NUMBER) {
        lab_warn("VixDiskLib: QueryAllocatedBlocks(start %llu, count %llu, chunk %llu) of %s: the chunk size must be "
                 "a multiple of %d sectors, start and count multiples of it (count may end at the capacity), at most %d "
                 "chunks\n", (unsigned long long)startSector, (unsigned long long)numSectors,
                 (unsigned long long)chunkSize, diskHandle->vmdk_path, VIXDISKLIB_MIN_CHUNK_SIZE,
                 VIXDISKLIB_MAX_CHUNK_NUMBER);
        err = VIX_E_INVALID_ARG;
    }
    if (err == VIX_OK)
        err = check_range(diskHandle, startSector, numSectors, "VixDiskLib_QueryAllocatedBlocks");
    if (err == VIX_OK)
        lab_transport_query(diskHandle);
    if (err == VIX_OK)
        err = lab_disk_allocated(diskHandle, startSector * VIXDISKLIB_SECTOR_SIZE,
                                 (startSector + numSectors) * VIXDISKLIB_SECTOR_SIZE, chunkSize * VIXDISKLIB_SECTOR_SIZE,
                                 blockList);
    io_exit(diskHandle);
    return err;
}

VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *blockList)
{
    free(blockList);
    return VIX_OK;
}
#endif

VixError VixDiskLib_Create(const VixDiskLibConnection connection, const char *path,
                           const VixDiskLibCreateParams *createParams, VixDiskLibProgressFunc progressFunc,
                           void *progressCallbackData)
{
    char *descriptor = NULL, *flat = NULL;
    VixError err = serial_enter("VixDiskLib_Create");
    if (err != VIX_OK)
        return err;
    err = check_conn(connection, "VixDiskLib_Create");
    if (err == VIX_OK && (!createParams || !path))
        err = VIX_E_INVALID_ARG;
    if (err == VIX_OK && connection->read_only) {
        lab_warn("VixDiskLib: cannot create %s on a read-only connection\n", path);
        err = VIX_E_FILE_READ_ONLY;
    }
    if (err == VIX_OK && connection->thumbprint_mismatch)
        err = VIX_E_FAIL;
    if (err == VIX_OK)
        err = resolve_path(connection, path, &descriptor, &flat);
    if (err == VIX_OK)
        err = lab_disk_create(descriptor, flat, createParams->capacity * VIXDISKLIB_SECTOR_SIZE,
                              (int)createParams->adapterType);
    /* a disk this connection created may be opened on it, like the VM's own disks */
    if (err == VIX_OK && connection->num_disks > 0 && connection->num_disks < MAX_DATASTORES)
        connection->disks[connection->num_disks++] = strdup(path);
    if (err == VIX_OK && progressFunc)
        progressFunc(progressCallbackData, 100);
    free(descriptor);
    free(flat);
    serial_exit();
    return err;
}
