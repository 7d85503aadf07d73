/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * The public VDDK (libvixDiskLib) declarations the lab's stand-in implements, written from the facts in
 * /work/shared/reference/vsphere-vddk.md section 1 (x86_64 layouts). The _Static_asserts pin every size and
 * offset the product's ctypes structures (plugins/module_utils/vddk/structs.py) rely on.
 */
#ifndef LAB_VIXDISKLIB_H
#define LAB_VIXDISKLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t VixError;
typedef char Bool;
typedef uint64_t VixDiskLibSectorType;

#define VIX_OK                          0
#define VIX_E_FAIL                      1
#define VIX_E_OUT_OF_MEMORY             2
#define VIX_E_INVALID_ARG               3
#define VIX_E_FILE_NOT_FOUND            4
#define VIX_E_OBJECT_IS_BUSY            5
#define VIX_E_NOT_SUPPORTED             6
#define VIX_E_FILE_ERROR                7
#define VIX_E_DISK_FULL                 8
#define VIX_E_CANCELLED                 10
#define VIX_E_FILE_READ_ONLY            11
#define VIX_E_FILE_ALREADY_EXISTS       12
#define VIX_E_FILE_ACCESS_ERROR         13
#define VIX_E_FILE_ALREADY_LOCKED       15
#define VIX_E_HOST_NOT_CONNECTED        26
#define VIX_E_AUTHENTICATION_FAIL       35
#define VIX_E_HOST_CONNECTION_LOST      36
#define VIX_E_INVALID_HANDLE            1000
#define VIX_E_VM_NOT_FOUND              4000
#define VIX_E_SNAPSHOT_NOTFOUND         13003
#define VIX_E_HOST_TCP_CONN_LOST        14011
#define VIX_E_DISK_INVAL                16000
#define VIX_E_DISK_OUTOFRANGE           16007
#define VIX_E_DISK_CID_MISMATCH         16008
#define VIX_E_CANNOT_CONNECT_TO_HOST    18000
#define VIX_ASYNC                       25000

#define VIXDISKLIB_SECTOR_SIZE          512
#define VIXDISKLIB_MIN_CHUNK_SIZE       128
#define VIXDISKLIB_MAX_CHUNK_NUMBER     (512 * 1024)

#define VIXDISKLIB_FLAG_OPEN_UNBUFFERED         1
#define VIXDISKLIB_FLAG_OPEN_SINGLE_LINK        2
#define VIXDISKLIB_FLAG_OPEN_READ_ONLY          4
#define VIXDISKLIB_FLAG_OPEN_COMPRESSION_ZLIB   16
#define VIXDISKLIB_FLAG_OPEN_COMPRESSION_FASTLZ 32
#define VIXDISKLIB_FLAG_OPEN_COMPRESSION_SKIPZ  64

typedef enum {
    VIXDISKLIB_DISK_MONOLITHIC_SPARSE = 1,
    VIXDISKLIB_DISK_MONOLITHIC_FLAT = 2,
    VIXDISKLIB_DISK_SPLIT_SPARSE = 3,
    VIXDISKLIB_DISK_SPLIT_FLAT = 4,
    VIXDISKLIB_DISK_VMFS_FLAT = 5,
    VIXDISKLIB_DISK_STREAM_OPTIMIZED = 6,
    VIXDISKLIB_DISK_VMFS_THIN = 7,
    VIXDISKLIB_DISK_VMFS_SPARSE = 8,
    VIXDISKLIB_DISK_UNKNOWN = 256
} VixDiskLibDiskType;

typedef enum {
    VIXDISKLIB_ADAPTER_IDE = 1,
    VIXDISKLIB_ADAPTER_SCSI_BUSLOGIC = 2,
    VIXDISKLIB_ADAPTER_SCSI_LSILOGIC = 3,
    VIXDISKLIB_ADAPTER_UNKNOWN = 256
} VixDiskLibAdapterType;

typedef enum {
    VIXDISKLIB_CRED_UID = 1,
    VIXDISKLIB_CRED_SESSIONID = 2,
    VIXDISKLIB_CRED_TICKETID = 3,
    VIXDISKLIB_CRED_SSPI = 4,
    VIXDISKLIB_CRED_UNKNOWN = 256
} VixDiskLibCredType;

typedef enum {
    VIXDISKLIB_SPEC_VMX = 0,
    VIXDISKLIB_SPEC_VSTORAGE_OBJECT = 1,
    VIXDISKLIB_SPEC_UNKNOWN = 2
} VixDiskLibSpecType;

typedef struct {
    uint32_t cylinders;
    uint32_t heads;
    uint32_t sectors;
} VixDiskLibGeometry;

typedef struct {
    char *userName;
    char *password;
} VixDiskLibUidPasswdCreds;

typedef struct {
    char *cookie;
    char *userName;
    char *key;
} VixDiskLibSessionIdCreds;

struct VixDiskLibTicketIdCreds;

typedef struct {
    char *id;
    char *datastoreMoRef;
    char *ssId;
} VixDiskLibVStorageObjectSpec;

typedef struct VixDiskLibConnectParams {
    char *vmxSpec;
    char *serverName;
    char *thumbPrint;
    long privateUse;
    VixDiskLibCredType credType;
    union VixDiskLibCreds {
        VixDiskLibUidPasswdCreds uid;
        VixDiskLibSessionIdCreds sessionId;
        struct VixDiskLibTicketIdCreds *ticketId;
    } creds;
    uint32_t port;
    uint32_t nfcHostPort;
    char *vimApiVer;
    char reserved[8];
    void *state;
    union {
        VixDiskLibVStorageObjectSpec vStorageObjSpec;
    } spec;
    VixDiskLibSpecType specType;
} VixDiskLibConnectParams;

typedef struct {
    VixDiskLibGeometry biosGeo;
    VixDiskLibGeometry physGeo;
    VixDiskLibSectorType capacity;
    VixDiskLibAdapterType adapterType;
    int numLinks;
    char *parentFileNameHint;
    char *uuid;
    uint32_t logicalSectorSize;
    uint32_t physicalSectorSize;
} VixDiskLibInfo;

typedef struct {
    VixDiskLibDiskType diskType;
    VixDiskLibAdapterType adapterType;
    uint16_t hwVersion;
    VixDiskLibSectorType capacity;
    uint32_t logicalSectorSize;
    uint32_t physicalSectorSize;
} VixDiskLibCreateParams;

typedef struct {
    VixDiskLibSectorType offset;
    VixDiskLibSectorType length;
} VixDiskLibBlock;

typedef struct {
    uint32_t numBlocks;
    VixDiskLibBlock blocks[1];
} VixDiskLibBlockList;

_Static_assert(sizeof(VixDiskLibConnectParams) == 128, "VixDiskLibConnectParams is 128 bytes");
_Static_assert(offsetof(VixDiskLibConnectParams, vmxSpec) == 0, "vmxSpec @0");
_Static_assert(offsetof(VixDiskLibConnectParams, serverName) == 8, "serverName @8");
_Static_assert(offsetof(VixDiskLibConnectParams, thumbPrint) == 16, "thumbPrint @16");
_Static_assert(offsetof(VixDiskLibConnectParams, privateUse) == 24, "privateUse @24");
_Static_assert(offsetof(VixDiskLibConnectParams, credType) == 32, "credType @32");
_Static_assert(offsetof(VixDiskLibConnectParams, creds) == 40, "creds @40");
_Static_assert(offsetof(VixDiskLibConnectParams, creds.sessionId.key) == 56, "creds.sessionId.key @56");
_Static_assert(offsetof(VixDiskLibConnectParams, port) == 64, "port @64");
_Static_assert(offsetof(VixDiskLibConnectParams, nfcHostPort) == 68, "nfcHostPort @68");
_Static_assert(offsetof(VixDiskLibConnectParams, vimApiVer) == 72, "vimApiVer @72");
_Static_assert(offsetof(VixDiskLibConnectParams, reserved) == 80, "reserved @80");
_Static_assert(offsetof(VixDiskLibConnectParams, state) == 88, "state @88");
_Static_assert(offsetof(VixDiskLibConnectParams, spec) == 96, "spec @96");
_Static_assert(offsetof(VixDiskLibConnectParams, specType) == 120, "specType @120");
_Static_assert(sizeof(VixDiskLibInfo) == 64, "VixDiskLibInfo is 64 bytes");
_Static_assert(offsetof(VixDiskLibInfo, physGeo) == 12, "physGeo @12");
_Static_assert(offsetof(VixDiskLibInfo, capacity) == 24, "capacity @24");
_Static_assert(offsetof(VixDiskLibInfo, adapterType) == 32, "adapterType @32");
_Static_assert(offsetof(VixDiskLibInfo, numLinks) == 36, "numLinks @36");
_Static_assert(offsetof(VixDiskLibInfo, parentFileNameHint) == 40, "parentFileNameHint @40");
_Static_assert(offsetof(VixDiskLibInfo, uuid) == 48, "uuid @48");
_Static_assert(offsetof(VixDiskLibInfo, logicalSectorSize) == 56, "logicalSectorSize @56");
_Static_assert(offsetof(VixDiskLibInfo, physicalSectorSize) == 60, "physicalSectorSize @60");
_Static_assert(sizeof(VixDiskLibCreateParams) == 32, "VixDiskLibCreateParams is 32 bytes");
_Static_assert(offsetof(VixDiskLibCreateParams, adapterType) == 4, "adapterType @4");
_Static_assert(offsetof(VixDiskLibCreateParams, hwVersion) == 8, "hwVersion @8");
_Static_assert(offsetof(VixDiskLibCreateParams, capacity) == 16, "capacity @16");
_Static_assert(offsetof(VixDiskLibCreateParams, logicalSectorSize) == 24, "logicalSectorSize @24");
_Static_assert(offsetof(VixDiskLibCreateParams, physicalSectorSize) == 28, "physicalSectorSize @28");
_Static_assert(offsetof(VixDiskLibBlockList, blocks) == 8, "blocks @8");
_Static_assert(sizeof(VixDiskLibBlock) == 16, "VixDiskLibBlock is 16 bytes");

typedef struct VixDiskLibConnectParam *VixDiskLibConnection;
typedef struct VixDiskLibHandleStruct *VixDiskLibHandle;

typedef void (VixDiskLibGenericLogFunc)(const char *fmt, va_list args);
typedef Bool (*VixDiskLibProgressFunc)(void *progressData, int percentCompleted);
typedef void (*VixDiskLibCompletionCB)(void *cbData, VixError result);

#define VIXDISKLIB_EXPORT __attribute__((visibility("default")))

VIXDISKLIB_EXPORT VixError VixDiskLib_InitEx(uint32_t majorVersion, uint32_t minorVersion,
                                             VixDiskLibGenericLogFunc *log, VixDiskLibGenericLogFunc *warn,
                                             VixDiskLibGenericLogFunc *panic, const char *libDir, const char *configFile);
VIXDISKLIB_EXPORT void VixDiskLib_Exit(void);
VIXDISKLIB_EXPORT char *VixDiskLib_GetErrorText(VixError err, const char *locale);
VIXDISKLIB_EXPORT void VixDiskLib_FreeErrorText(char *errMsg);
VIXDISKLIB_EXPORT VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *connectParams, Bool readOnly,
                                                const char *snapshotRef, const char *transportModes,
                                                VixDiskLibConnection *connection);
VIXDISKLIB_EXPORT VixError VixDiskLib_Disconnect(VixDiskLibConnection connection);
VIXDISKLIB_EXPORT VixError VixDiskLib_Open(const VixDiskLibConnection connection, const char *path, uint32_t flags,
                                           VixDiskLibHandle *diskHandle);
VIXDISKLIB_EXPORT VixError VixDiskLib_Close(VixDiskLibHandle diskHandle);
VIXDISKLIB_EXPORT VixError VixDiskLib_GetInfo(VixDiskLibHandle diskHandle, VixDiskLibInfo **info);
VIXDISKLIB_EXPORT void VixDiskLib_FreeInfo(VixDiskLibInfo *info);
VIXDISKLIB_EXPORT VixError VixDiskLib_Read(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                           VixDiskLibSectorType numSectors, uint8_t *readBuffer);
VIXDISKLIB_EXPORT VixError VixDiskLib_Write(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                            VixDiskLibSectorType numSectors, const uint8_t *writeBuffer);
VIXDISKLIB_EXPORT VixError VixDiskLib_ReadAsync(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                                VixDiskLibSectorType numSectors, uint8_t *readBuffer,
                                                VixDiskLibCompletionCB callback, void *cbData);
VIXDISKLIB_EXPORT VixError VixDiskLib_WriteAsync(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                                 VixDiskLibSectorType numSectors, const uint8_t *writeBuffer,
                                                 VixDiskLibCompletionCB callback, void *cbData);
VIXDISKLIB_EXPORT VixError VixDiskLib_Wait(VixDiskLibHandle diskHandle);
VIXDISKLIB_EXPORT VixError VixDiskLib_Flush(VixDiskLibHandle diskHandle);
VIXDISKLIB_EXPORT VixError VixDiskLib_Create(const VixDiskLibConnection connection, const char *path,
                                             const VixDiskLibCreateParams *createParams,
                                             VixDiskLibProgressFunc progressFunc, void *progressCallbackData);
VIXDISKLIB_EXPORT VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle diskHandle, VixDiskLibSectorType startSector,
                                                           VixDiskLibSectorType numSectors, VixDiskLibSectorType chunkSize,
                                                           VixDiskLibBlockList **blockList);
VIXDISKLIB_EXPORT VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *blockList);
VIXDISKLIB_EXPORT VixError VixDiskLib_PrepareForAccess(const VixDiskLibConnectParams *connectParams, const char *identity);
VIXDISKLIB_EXPORT VixError VixDiskLib_EndAccess(const VixDiskLibConnectParams *connectParams, const char *identity);
VIXDISKLIB_EXPORT const char *VixDiskLib_ListTransportModes(void);
VIXDISKLIB_EXPORT const char *VixDiskLib_GetTransportMode(VixDiskLibHandle diskHandle);
VIXDISKLIB_EXPORT VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *connectParams, uint32_t *numCleanedUp,
                                              uint32_t *numRemaining);
VIXDISKLIB_EXPORT void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *connectParams);
VIXDISKLIB_EXPORT VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void);

#endif
