/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * The stand-in's disk side, exactly as tests/lab/PROTOCOL.md sections 1-3 describe it: the live flat file F,
 * copy-on-write snapshot views F.snap/<moref>/{meta,map,data} in 64 KiB blocks, and the F.cbt change log.
 * Every call takes flock(2) on the handle's own descriptor of F for its duration only: LOCK_EX to write,
 * LOCK_SH to read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "standin.h"

#define DIRECT_ALIGN 4096

static VixError errno_to_vix(int err)
{
    switch (err) {
    case ENOENT: return VIX_E_FILE_NOT_FOUND;
    case EACCES: case EPERM: return VIX_E_FILE_ACCESS_ERROR;
    case EROFS: return VIX_E_FILE_READ_ONLY;
    case ENOSPC: return VIX_E_DISK_FULL;
    case ENOMEM: return VIX_E_OUT_OF_MEMORY;
    default: return VIX_E_FILE_ERROR;
    }
}

static int lock_fd(int fd, int how)
{
    while (flock(fd, how) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* pread exactly len bytes; bytes past EOF read as zero. */
static int pread_full(int fd, uint8_t *buf, uint64_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            memset(buf, 0, len);
            return 0;
        }
        buf += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, uint64_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

static int all_zero(const uint8_t *buf, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (buf[i])
            return 0;
    return 1;
}

/* The capacity line of a snapshot's meta file, or -1. */
static int64_t read_meta_capacity(const char *snapdir)
{
    char path[4096], line[256];
    int64_t capacity = -1;
    FILE *f;

    snprintf(path, sizeof path, "%s/meta", snapdir);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        long long v;
        if (sscanf(line, "capacity %lld", &v) == 1)
            capacity = v;
    }
    fclose(f);
    return capacity;
}

VixError lab_disk_open(VixDiskLibHandle h)
{
    struct stat st;

    h->map_fd = h->data_fd = -1;
    h->fd = open(h->flat_path, (h->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (h->fd < 0) {
        int err = errno;
        lab_warn("VixDiskLib: cannot open the flat file of %s (%s): %s\n", h->vmdk_path, h->flat_path, strerror(err));
        return errno_to_vix(err);
    }
    if (!h->snapshot_view) {
        if (fstat(h->fd, &st) != 0)
            return errno_to_vix(errno);
        h->capacity = (uint64_t)st.st_size;
        if (!h->read_only)
            h->direct_fd = open(h->flat_path, O_WRONLY | O_DIRECT | O_CLOEXEC);     /* -1: page cache only */
        return VIX_OK;
    }
    char snapdir[4096], path[4200];
    snprintf(snapdir, sizeof snapdir, "%s/%s", h->snap_root, h->conn->snapshot_ref);
    if (lock_fd(h->fd, LOCK_SH) != 0)
        return VIX_E_FILE_ERROR;
    int64_t capacity = read_meta_capacity(snapdir);
    snprintf(path, sizeof path, "%s/map", snapdir);
    h->map_fd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/data", snapdir);
    h->data_fd = open(path, O_RDONLY | O_CLOEXEC);
    flock(h->fd, LOCK_UN);
    if (capacity < 0 || h->map_fd < 0 || h->data_fd < 0) {
        lab_warn("VixDiskLib: disk %s has no point-in-time view for snapshot %s (%s)\n", h->vmdk_path,
                 h->conn->snapshot_ref, snapdir);
        return VIX_E_FILE_NOT_FOUND;
    }
    h->capacity = (uint64_t)capacity;
    return VIX_OK;
}

void lab_disk_close(VixDiskLibHandle h)
{
    if (h->fd >= 0)
        close(h->fd);
    if (h->map_fd >= 0)
        close(h->map_fd);
    if (h->data_fd >= 0)
        close(h->data_fd);
    if (h->direct_fd >= 0)
        close(h->direct_fd);
    free(h->bounce);
    h->bounce = NULL;
    h->bounce_len = 0;
    h->fd = h->map_fd = h->data_fd = h->direct_fd = -1;
}

/* Map bytes of COW blocks [first, last] of a snapshot view; NULL on error. */
static uint8_t *read_map(int map_fd, uint64_t first, uint64_t last)
{
    uint8_t *map = malloc(last - first + 1);
    if (map && pread_full(map_fd, map, last - first + 1, first) != 0) {
        free(map);
        return NULL;
    }
    return map;
}

/* The end of the run of COW blocks that starts at byte pos (before end) and share one map state, which goes to
 * *preserved: a snapshot view reads (or scans) such a run from one file, `data` when preserved, F otherwise. */
static uint64_t cow_run_end(const uint8_t *map, uint64_t first, uint64_t pos, uint64_t end, uint8_t *preserved)
{
    uint64_t b = pos / COW_BLOCK;
    uint64_t run_end = (b + 1) * COW_BLOCK;

    *preserved = map[b - first];
    while (run_end < end && map[run_end / COW_BLOCK - first] == *preserved)
        run_end += COW_BLOCK;
    return run_end > end ? end : run_end;
}

static int snapshot_still_exists(VixDiskLibHandle h)
{
    struct stat st;
    return fstat(h->map_fd, &st) == 0 && st.st_nlink > 0;
}

VixError lab_disk_read(VixDiskLibHandle h, uint64_t offset, uint64_t length, uint8_t *buf)
{
    VixError err = VIX_OK;

    if (length == 0)
        return VIX_OK;
    if (lock_fd(h->fd, LOCK_SH) != 0)
        return VIX_E_FILE_ERROR;
    if (!h->snapshot_view) {
        if (pread_full(h->fd, buf, length, offset) != 0)
            err = errno_to_vix(errno);
        goto out;
    }
    if (!snapshot_still_exists(h)) {
        lab_warn("VixDiskLib: snapshot %s of %s was removed while the disk was open\n", h->conn->snapshot_ref,
                 h->vmdk_path);
        err = VIX_E_FILE_NOT_FOUND;
        goto out;
    }
    uint64_t first = offset / COW_BLOCK, last = (offset + length - 1) / COW_BLOCK;
    uint8_t *map = read_map(h->map_fd, first, last);
    if (!map) {
        err = VIX_E_FILE_ERROR;
        goto out;
    }
    uint64_t pos = offset, end = offset + length;
    while (pos < end) {
        uint8_t preserved;
        uint64_t run_end = cow_run_end(map, first, pos, end, &preserved);
        if (pread_full(preserved ? h->data_fd : h->fd, buf + (pos - offset), run_end - pos, pos) != 0) {
            err = errno_to_vix(errno);
            break;
        }
        pos = run_end;
    }
    free(map);
out:
    flock(h->fd, LOCK_UN);
    return err;
}

/* Step 1 of the write path for one snapshot directory: preserve F's current bytes of the blocks about to change. */
static VixError cow_preserve(int fd, const char *snapdir, uint64_t offset, uint64_t length, uint8_t *scratch)
{
    char path[4200];
    int64_t capacity = read_meta_capacity(snapdir);
    VixError err = VIX_OK;
    int map_fd, data_fd;

    if (capacity < 0) {
        lab_warn("VixDiskLib: snapshot directory %s has no readable meta\n", snapdir);
        return VIX_E_FILE_ERROR;
    }
    uint64_t first = offset / COW_BLOCK, last = (offset + length - 1) / COW_BLOCK;
    if (first * COW_BLOCK >= (uint64_t)capacity)
        return VIX_OK;
    if ((last + 1) * COW_BLOCK > (uint64_t)capacity)
        last = ((uint64_t)capacity - 1) / COW_BLOCK;
    snprintf(path, sizeof path, "%s/map", snapdir);
    map_fd = open(path, O_RDWR | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/data", snapdir);
    data_fd = open(path, O_RDWR | O_CLOEXEC);
    uint8_t *map = map_fd >= 0 && data_fd >= 0 ? read_map(map_fd, first, last) : NULL;
    if (!map) {
        lab_warn("VixDiskLib: snapshot directory %s is incomplete\n", snapdir);
        err = VIX_E_FILE_ERROR;
        goto out;
    }
    for (uint64_t b = first; b <= last; b++) {
        if (map[b - first])
            continue;
        uint64_t start = b * COW_BLOCK, blen = COW_BLOCK;
        if (start + blen > (uint64_t)capacity)
            blen = (uint64_t)capacity - start;
        if (pread_full(fd, scratch, blen, start) != 0 ||
            (!all_zero(scratch, blen) && pwrite_full(data_fd, scratch, blen, start) != 0) ||
            pwrite_full(map_fd, (const uint8_t *)"\1", 1, b) != 0) {
            err = errno_to_vix(errno);
            break;
        }
    }
    free(map);
out:
    if (map_fd >= 0)
        close(map_fd);
    if (data_fd >= 0)
        close(data_fd);
    return err;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Step 3: append (offset, length) to F.cbt, creating it with a random non-zero epoch when missing. */
static VixError cbt_append(const char *cbt_path, uint64_t offset, uint64_t length)
{
    struct stat st;
    uint8_t record[16];
    int fd = open(cbt_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0 || fstat(fd, &st) != 0)
        goto fail;
    if (st.st_size < 32) {
        uint8_t header[32];
        uint64_t epoch = 0;
        memset(header, 0, sizeof header);
        memcpy(header, "LABCBT01", 8);
        while (epoch == 0)
            if (getrandom(&epoch, sizeof epoch, 0) != sizeof epoch)
                goto fail;
        put_le64(header + 8, epoch);
        if (pwrite_full(fd, header, 32, 0) != 0)
            goto fail;
        st.st_size = 32;
    }
    put_le64(record, offset);
    put_le64(record + 8, length);
    /* records are whole 16-byte units after the header, whatever a torn writer left behind */
    uint64_t at = 32 + ((uint64_t)st.st_size - 32) / 16 * 16;
    if (pwrite_full(fd, record, 16, at) != 0)
        goto fail;
    close(fd);
    return VIX_OK;
fail:
    lab_warn("VixDiskLib: cannot append to the change log %s: %s\n", cbt_path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return VIX_E_FILE_ERROR;
}

/* F stands for a datastore, and a datastore is not cached in the memory of the machine that writes to it (VMFS
 * does not use the ESXi host's memory as a write cache). So the 4 KiB-aligned part of a write goes to F with
 * O_DIRECT, through the handle's aligned bounce buffer; the rest, and everything on a file system that refuses
 * O_DIRECT, goes through the page cache. Buffered readers stay coherent: a direct write drops the cached pages
 * of its range. */
static int write_data(VixDiskLibHandle h, const uint8_t *buf, uint64_t length, uint64_t offset)
{
    uint64_t head = h->direct_fd >= 0 && offset % DIRECT_ALIGN == 0 ? length - length % DIRECT_ALIGN : 0;

    if (head && h->bounce_len < head) {
        free(h->bounce);
        h->bounce_len = 0;
        if (posix_memalign((void **)&h->bounce, DIRECT_ALIGN, head) != 0)
            h->bounce = NULL;
        else
            h->bounce_len = head;
    }
    if (head && h->bounce) {
        memcpy(h->bounce, buf, head);
        if (pwrite_full(h->direct_fd, h->bounce, head, offset) != 0) {
            if (errno != EINVAL)
                return -1;
            close(h->direct_fd);        /* refused here: the page cache from now on */
            h->direct_fd = -1;
            head = 0;
        }
    } else {
        head = 0;
    }
    return pwrite_full(h->fd, buf + head, length - head, offset + head);
}

VixError lab_disk_write(VixDiskLibHandle h, uint64_t offset, uint64_t length, const uint8_t *buf)
{
    VixError err = VIX_OK;
    uint8_t *scratch = NULL;
    DIR *dir = NULL;

    if (length == 0)
        return VIX_OK;
    if (lock_fd(h->fd, LOCK_EX) != 0)
        return VIX_E_FILE_ERROR;
    dir = opendir(h->snap_root);
    if (dir) {
        struct dirent *de;
        char snapdir[4096];
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            if (!scratch && !(scratch = malloc(COW_BLOCK))) {
                err = VIX_E_OUT_OF_MEMORY;
                goto out;
            }
            snprintf(snapdir, sizeof snapdir, "%s/%s", h->snap_root, de->d_name);
            err = cow_preserve(h->fd, snapdir, offset, length, scratch);
            if (err != VIX_OK)
                goto out;
        }
    }
    if (write_data(h, buf, length, offset) != 0) {
        err = errno_to_vix(errno);
        goto out;
    }
    err = cbt_append(h->cbt_path, offset, length);
out:
    if (dir)
        closedir(dir);
    free(scratch);
    flock(h->fd, LOCK_UN);
    return err;
}

/* -- allocation ------------------------------------------------------------------------------------------------ */

struct range_list {
    VixDiskLibBlock *items;      /* in bytes while collecting, converted to sectors at the end */
    uint32_t count, cap;
    uint64_t chunk, lo, hi;
};

static int add_range(struct range_list *l, uint64_t s, uint64_t e)
{
    uint64_t s_al = s / l->chunk * l->chunk, e_al = (e + l->chunk - 1) / l->chunk * l->chunk;
    if (s_al < l->lo)
        s_al = l->lo;
    if (e_al > l->hi)
        e_al = l->hi;
    if (e_al <= s_al)
        return 0;
    if (l->count && l->items[l->count - 1].offset + l->items[l->count - 1].length >= s_al) {
        VixDiskLibBlock *last = &l->items[l->count - 1];
        if (e_al > last->offset + last->length)
            last->length = e_al - last->offset;
        return 0;
    }
    if (l->count == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        VixDiskLibBlock *bigger = realloc(l->items, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        l->items = bigger;
        l->cap = cap;
    }
    l->items[l->count].offset = s_al;
    l->items[l->count].length = e_al - s_al;
    l->count++;
    return 0;
}

/* Data ranges of fd within [s, e) by SEEK_DATA/SEEK_HOLE. */
static int scan_allocation(struct range_list *l, int fd, uint64_t s, uint64_t e)
{
    uint64_t pos = s;
    while (pos < e) {
        off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO ? 0 : -1;
        if ((uint64_t)data >= e)
            return 0;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            return -1;
        uint64_t hole_end = (uint64_t)hole > e ? e : (uint64_t)hole;
        if (add_range(l, (uint64_t)data, hole_end) != 0)
            return -1;
        pos = hole_end;
    }
    return 0;
}

VixError lab_disk_allocated(VixDiskLibHandle h, uint64_t start, uint64_t end, uint64_t chunk,
                            VixDiskLibBlockList **out)
{
    struct range_list l = { .chunk = chunk, .lo = start, .hi = end };
    VixError err = VIX_OK;
    uint8_t *map = NULL;

    if (lock_fd(h->fd, LOCK_SH) != 0)
        return VIX_E_FILE_ERROR;
    if (end > start && !h->snapshot_view) {
        if (scan_allocation(&l, h->fd, start, end) != 0)
            err = errno_to_vix(errno);
    } else if (end > start) {
        uint64_t first = start / COW_BLOCK, last = (end - 1) / COW_BLOCK;
        map = read_map(h->map_fd, first, last);
        if (!map || !snapshot_still_exists(h)) {
            err = VIX_E_FILE_ERROR;
            goto out;
        }
        uint64_t pos = start;
        while (pos < end) {
            uint8_t preserved;
            uint64_t run_end = cow_run_end(map, first, pos, end, &preserved);
            if (scan_allocation(&l, preserved ? h->data_fd : h->fd, pos, run_end) != 0) {
                err = errno_to_vix(errno);
                goto out;
            }
            pos = run_end;
        }
    }
out:
    flock(h->fd, LOCK_UN);
    free(map);
    if (err == VIX_OK) {
        VixDiskLibBlockList *list = calloc(1, sizeof *list + (l.count ? l.count : 1) * sizeof(VixDiskLibBlock));
        if (!list) {
            err = VIX_E_OUT_OF_MEMORY;
        } else {
            list->numBlocks = l.count;
            for (uint32_t i = 0; i < l.count; i++) {
                list->blocks[i].offset = l.items[i].offset / VIXDISKLIB_SECTOR_SIZE;
                list->blocks[i].length = l.items[i].length / VIXDISKLIB_SECTOR_SIZE;
            }
            *out = list;
        }
    }
    free(l.items);
    return err;
}

/* -- create ---------------------------------------------------------------------------------------------------- */

static const char *adapter_name(int adapter)
{
    switch (adapter) {
    case VIXDISKLIB_ADAPTER_IDE: return "ide";
    case VIXDISKLIB_ADAPTER_SCSI_BUSLOGIC: return "buslogic";
    default: return "lsilogic";
    }
}

int lab_disk_adapter_type(const char *descriptor_path)
{
    char line[512];
    int adapter = VIXDISKLIB_ADAPTER_SCSI_LSILOGIC;
    FILE *f = fopen(descriptor_path, "re");

    if (!f)
        return adapter;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "ddb.adapterType", 15) != 0)
            continue;
        if (strstr(line, "\"ide\""))
            adapter = VIXDISKLIB_ADAPTER_IDE;
        else if (strstr(line, "\"buslogic\""))
            adapter = VIXDISKLIB_ADAPTER_SCSI_BUSLOGIC;
    }
    fclose(f);
    return adapter;
}

VixError lab_disk_create(const char *descriptor_path, const char *flat_path, uint64_t capacity, int adapter)
{
    struct stat st;
    int fd = open(flat_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

    if (fd < 0) {
        int err = errno;
        lab_warn("VixDiskLib: cannot create %s: %s\n", flat_path, strerror(err));
        return err == EEXIST ? VIX_E_FILE_ALREADY_EXISTS : errno_to_vix(err);
    }
    if (ftruncate(fd, (off_t)capacity) != 0) {
        int err = errno;
        close(fd);
        unlink(flat_path);
        return errno_to_vix(err);
    }
    close(fd);
    if (stat(descriptor_path, &st) == 0 && st.st_size > 0)
        return VIX_OK;
    FILE *f = fopen(descriptor_path, "we");
    if (!f)
        return errno_to_vix(errno);
    const char *base = strrchr(flat_path, '/');
    fprintf(f, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=ffffffff\n"
               "createType=\"vmfs\"\n\n# Extent description\nRW %llu VMFS \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"
               "ddb.adapterType = \"%s\"\nddb.virtualHWVersion = \"13\"\n",
            (unsigned long long)(capacity / VIXDISKLIB_SECTOR_SIZE), base ? base + 1 : flat_path, adapter_name(adapter));
    return fclose(f) == 0 ? VIX_OK : VIX_E_FILE_ERROR;
}
