/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * Internal declarations shared by the stand-in's source files (not part of the VDDK API).
 */
#ifndef LAB_STANDIN_H
#define LAB_STANDIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vixDiskLib.h"

#define COW_BLOCK 65536ULL
#define MAX_DATASTORES 64

/* One datastore mapping from GET /lab/vddk. */
struct lab_datastore {
    char *name;
    char *path;
};

struct VixDiskLibConnectParam {
    uint32_t magic;
    char *server;
    char *vm_moref;
    char *snapshot_ref;           /* NULL: live disks */
    char requested_modes[128];    /* as given to ConnectEx ("" = VDDK's default order); each Open picks its mode */
    int read_only;
    int thumbprint_mismatch;      /* real VDDK reports this as VIX_E_FAIL at Open time */
    int num_datastores;
    struct lab_datastore datastores[MAX_DATASTORES];
    int num_disks;                /* optional "disk [DS] path" lines: when given, Open accepts only these */
    char *disks[MAX_DATASTORES];
    atomic_int open_handles;
};

struct VixDiskLibHandleStruct {
    uint32_t magic;
    struct VixDiskLibHandleStruct *next_live;   /* registry of live handles */
    VixDiskLibConnection conn;
    char *vmdk_path;              /* "[DS] dir/name.vmdk" as given */
    char *descriptor_path;
    char *flat_path;              /* F */
    char *cbt_path;
    char *snap_root;              /* F.snap */
    int fd;                       /* F, own open file description (flock is per description) */
    int read_only;
    int snapshot_view;
    int map_fd, data_fd;          /* snapshot view only */
    int direct_fd;                /* F opened O_DIRECT for writes, -1 when read-only or refused (disk.c) */
    uint8_t *bounce;              /* 4 KiB-aligned copy of a direct write */
    size_t bounce_len;
    uint64_t capacity;            /* bytes (snapshot capacity for a snapshot view) */
    atomic_int io_in_progress;
    atomic_int async_pending;     /* submitted asynchronous requests whose callback has not returned yet */
    int mode;                     /* enum lab_mode: the transport chosen at Open (transport.c) */
    int nfc_reserved;             /* this handle holds one NFC connection and its buffer memory */
    uint64_t conn_free_ns;        /* the handle's own link is busy until then (CLOCK_MONOTONIC) */
    unsigned long long fail_count[2];   /* per-handle Nth-call counters (LABVDDK_FAIL_SCOPE=handle) */
    pthread_mutex_t disk_mu;      /* serializes the disk I/O of the caller's thread and the async worker */
    struct lab_async *async;      /* the handle's request queue and worker thread, created at the first async call */
};

/* Transport modes the lab models (transport.c); the values index per-mode tables. */
enum lab_mode { LAB_MODE_NBD = 0, LAB_MODE_NBDSSL, LAB_MODE_HOTADD, LAB_MODE_SAN, LAB_MODE_COUNT };
enum { KIND_READ = 0, KIND_WRITE = 1 };

/* standin.c */
void lab_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lab_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
VixError lab_rule_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* standin.c: the I/O of one request, shared by the synchronous calls and the async worker */
VixError lab_io(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n, uint8_t *buf,
                const char *fn);

/* transport.c: the cost model of the transport modes (PROTOCOL.md section 5) */
VixError lab_transport_load(void);
void lab_transport_reset_stats(void);
void lab_transport_write_stats(FILE *f);
const char *lab_mode_name(int mode);
VixError lab_transport_open(VixDiskLibHandle h, int writable);
void lab_transport_close(VixDiskLibHandle h);
void lab_transport_charge(VixDiskLibHandle h, uint64_t bytes, uint64_t submit_ns);
void lab_transport_query(VixDiskLibHandle h);
int lab_async_depth(void);
uint64_t lab_now_ns(void);

/* async.c: per-handle request queue served by a worker thread */
VixError lab_async_submit(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n,
                          uint8_t *buf, VixDiskLibCompletionCB cb, void *data, VixError preset);
void lab_async_wait(VixDiskLibHandle h);
void lab_async_stop(VixDiskLibHandle h);
void lab_async_reset_stats(void);
void lab_async_write_stats(FILE *f);

/* net.c: TLS + HTTP against the simulator */
struct lab_http_result {
    int status;                   /* HTTP status, or -1 when the network failed */
    char thumbprint[64];          /* "AA:BB:..." of the peer certificate */
    char *body;                   /* malloc'd, NUL-terminated */
};
int lab_http_get(const char *host, unsigned port, const char *path_and_query, const char *auth_header,
                 struct lab_http_result *result, char *errbuf, size_t errlen);
char *lab_basic_auth(const char *user, const char *password);

/* disk.c: the PROTOCOL.md disk-state operations */
VixError lab_disk_open(VixDiskLibHandle h);
void lab_disk_close(VixDiskLibHandle h);
VixError lab_disk_read(VixDiskLibHandle h, uint64_t offset, uint64_t length, uint8_t *buf);
VixError lab_disk_write(VixDiskLibHandle h, uint64_t offset, uint64_t length, const uint8_t *buf);
VixError lab_disk_allocated(VixDiskLibHandle h, uint64_t start, uint64_t end, uint64_t chunk,
                            VixDiskLibBlockList **out);
VixError lab_disk_create(const char *descriptor_path, const char *flat_path, uint64_t capacity, int adapter);
int lab_disk_adapter_type(const char *descriptor_path);

#endif
