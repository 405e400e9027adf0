namespace Ect.Data; internal static class AssemblyMarker {}
