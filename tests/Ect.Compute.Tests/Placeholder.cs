namespace Ect.Compute.Tests; public class Placeholder {}
