using System.Runtime.InteropServices;

namespace Ect.Mpi;

/// <summary>
/// The few entry points of Open MPI's libmpi.so.40 that ect uses, resolved once by <see cref="NativeLibrary.GetExport"/>.
/// Open MPI's handles are not integers: MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ... are the addresses of exported globals
/// (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum), so they are looked up like functions. The library is opened
/// RTLD_GLOBAL (as mpi4py does): Open MPI's plugins (mca_*.so) resolve some of their symbols against it.
/// </summary>
internal sealed unsafe class OpenMpiLibrary
{
    public const string FileName = "libmpi.so.40";
    /// <summary>Open MPI's MPI_IN_PLACE is ((void*)1).</summary>
    public static readonly nint InPlace = 1;

    public readonly nint CommWorld, Float, Double, Long, Byte, OpSum, OpMax;
    public readonly delegate* unmanaged<int*, nint*, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int*, int> Initialized, Finalized;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank, CommSize;
    public readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> Allreduce;
    public readonly delegate* unmanaged<nint, int, nint, int, nint, int> Bcast;
    public readonly delegate* unmanaged<nint, int, nint, int, nint, nint*, int> Ibcast;
    public readonly delegate* unmanaged<nint*, int*, nint, int> Test;
    public readonly delegate* unmanaged<nint, int, nint, int, int, nint, int> Send;
    public readonly delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int> Irecv;
    public readonly delegate* unmanaged<nint*, int> Cancel;
    public readonly delegate* unmanaged<nint*, nint, int> Wait;
    public readonly delegate* unmanaged<nint, int> Barrier;
    public readonly delegate* unmanaged<nint, int, int> Abort;
    public readonly delegate* unmanaged<int, byte*, int*, int> ErrorString;

    private OpenMpiLibrary(nint lib)
    {
        nint F(string name) => NativeLibrary.TryGetExport(lib, name, out var p) ? p
            : throw new MpiException($"{FileName} has no symbol '{name}': ect's MPI binding needs Open MPI 4.x (Debian: apt-get install openmpi-bin libopenmpi-dev).");
        CommWorld = F("ompi_mpi_comm_world");
        Float = F("ompi_mpi_float");
        Double = F("ompi_mpi_double");
        Long = F("ompi_mpi_long");
        Byte = F("ompi_mpi_byte");
        OpSum = F("ompi_mpi_op_sum");
        OpMax = F("ompi_mpi_op_max");
        InitThread = (delegate* unmanaged<int*, nint*, int, int*, int>)F("MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)F("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)F("MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)F("MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)F("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)F("MPI_Comm_size");
        Allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)F("MPI_Allreduce");
        Bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)F("MPI_Bcast");
        Ibcast = (delegate* unmanaged<nint, int, nint, int, nint, nint*, int>)F("MPI_Ibcast");
        Test = (delegate* unmanaged<nint*, int*, nint, int>)F("MPI_Test");
        Send = (delegate* unmanaged<nint, int, nint, int, int, nint, int>)F("MPI_Send");
        Irecv = (delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int>)F("MPI_Irecv");
        Cancel = (delegate* unmanaged<nint*, int>)F("MPI_Cancel");
        Wait = (delegate* unmanaged<nint*, nint, int>)F("MPI_Wait");
        Barrier = (delegate* unmanaged<nint, int>)F("MPI_Barrier");
        Abort = (delegate* unmanaged<nint, int, int>)F("MPI_Abort");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)F("MPI_Error_string");
    }

    [DllImport("libc.so.6", EntryPoint = "dlopen")]
    private static extern nint DlOpen(string file, int flags);

    [DllImport("libc.so.6", EntryPoint = "dlerror")]
    private static extern nint DlError();

    private const int RtldNow = 2, RtldGlobal = 0x100;

    public static OpenMpiLibrary Load()
    {
        var lib = DlOpen(FileName, RtldNow | RtldGlobal);
        if (lib == 0)
        {
            var why = Marshal.PtrToStringUTF8(DlError()) ?? "unknown error";
            throw new MpiException($"cannot load {FileName} ({why}). This process was started by mpirun, so it needs Open MPI 4.x's " +
                                   "library on every machine of the job (Debian: apt-get install openmpi-bin libopenmpi-dev).");
        }
        return new OpenMpiLibrary(lib);
    }

    /// <summary>Throws with Open MPI's text for a non-zero return code (only reachable with MPI_ERRORS_RETURN; the default handler aborts).</summary>
    public void Check(int rc, string call)
    {
        if (rc == 0) return;
        var buf = stackalloc byte[512];
        int len = 0;
        var text = ErrorString(rc, buf, &len) == 0 ? Marshal.PtrToStringUTF8((nint)buf, len) : $"error {rc}";
        throw new MpiException($"{call} failed: {text}");
    }
}
