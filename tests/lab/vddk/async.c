/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * ReadAsync/WriteAsync with real concurrency: each handle has a bounded queue (LABVDDK_ASYNC_DEPTH requests in
 * flight, default 32; a submit beyond it blocks until one completes) served by a worker thread of its own, created
 * at the handle's first asynchronous call and joined at Close. The worker does the disk I/O, pays the transport's
 * cost counted from the request's submission (so queued requests overlap their latency, as pipelined NBD does),
 * then invokes the completion callback from its own thread, as real VDDK does. Wait returns when every callback of
 * the handle has returned.
 *
 * Thread-safety: one mutex and condition variable per queue; the caller's thread and the worker share the handle's
 * disk through h->disk_mu.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "standin.h"

struct lab_job {
    struct lab_job *next;
    int kind;
    VixDiskLibSectorType start, n;
    uint8_t *buf;
    VixDiskLibCompletionCB cb;
    void *data;
    VixError preset;               /* an error decided at submission (injected fault, bad argument): no I/O */
    uint64_t submit_ns;
};

struct lab_async {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* queue changed: a job arrived, one completed, or stop */
    struct lab_job *head, *tail;
    int stop;
    pthread_t thread;
};

static atomic_ullong st_submitted, st_max_in_flight, st_full_waits;

static void *worker_main(void *arg)
{
    VixDiskLibHandle h = arg;
    struct lab_async *q = h->async;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head)
            break;
        struct lab_job *job = q->head;
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->mu);

        VixError result = job->preset;
        if (result == VIX_OK) {
            pthread_mutex_lock(&h->disk_mu);
            result = lab_io(h, job->kind, job->start, job->n, job->buf,
                            job->kind == KIND_READ ? "VixDiskLib_ReadAsync" : "VixDiskLib_WriteAsync");
            pthread_mutex_unlock(&h->disk_mu);
            if (result == VIX_OK)
                lab_transport_charge(h, job->n * VIXDISKLIB_SECTOR_SIZE, job->submit_ns);
        }
        job->cb(job->data, result);
        free(job);

        pthread_mutex_lock(&q->mu);
        atomic_fetch_sub(&h->async_pending, 1);
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static struct lab_async *queue_of(VixDiskLibHandle h)
{
    if (h->async)
        return h->async;
    struct lab_async *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    h->async = q;
    if (pthread_create(&q->thread, NULL, worker_main, h) != 0) {
        h->async = NULL;
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

/* Queue one request (the caller holds the handle's io_in_progress flag, so queue_of never races itself). */
VixError lab_async_submit(VixDiskLibHandle h, int kind, VixDiskLibSectorType start, VixDiskLibSectorType n,
                          uint8_t *buf, VixDiskLibCompletionCB cb, void *data, VixError preset)
{
    struct lab_async *q = queue_of(h);
    struct lab_job *job = calloc(1, sizeof *job);
    if (!q || !job) {
        free(job);
        return VIX_E_OUT_OF_MEMORY;
    }
    *job = (struct lab_job){ .kind = kind, .start = start, .n = n, .buf = buf, .cb = cb, .data = data,
                             .preset = preset, .submit_ns = lab_now_ns() };
    int depth = lab_async_depth();
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&h->async_pending) >= depth) {
        atomic_fetch_add(&st_full_waits, 1);
        while (atomic_load(&h->async_pending) >= depth)
            pthread_cond_wait(&q->cv, &q->mu);
        job->submit_ns = lab_now_ns();       /* it is sent when a slot frees, not when the caller asked */
    }
    int in_flight = atomic_fetch_add(&h->async_pending, 1) + 1;
    unsigned long long old = atomic_load(&st_max_in_flight);
    while ((unsigned long long)in_flight > old && !atomic_compare_exchange_weak(&st_max_in_flight, &old, in_flight))
        ;
    atomic_fetch_add(&st_submitted, 1);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return VIX_ASYNC;
}

void lab_async_wait(VixDiskLibHandle h)
{
    struct lab_async *q = h->async;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    while (atomic_load(&h->async_pending) > 0)
        pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

/* Close: nothing is pending (checked by the caller); stop and join the worker. */
void lab_async_stop(VixDiskLibHandle h)
{
    struct lab_async *q = h->async;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
    h->async = NULL;
}

void lab_async_reset_stats(void)
{
    atomic_store(&st_submitted, 0);
    atomic_store(&st_max_in_flight, 0);
    atomic_store(&st_full_waits, 0);
}

void lab_async_write_stats(FILE *f)
{
    fprintf(f, "async_submitted %llu\nasync_max_in_flight %llu\nasync_queue_full_waits %llu\n",
            (unsigned long long)atomic_load(&st_submitted), (unsigned long long)atomic_load(&st_max_in_flight),
            (unsigned long long)atomic_load(&st_full_waits));
}
