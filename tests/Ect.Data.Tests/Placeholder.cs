namespace Ect.Data.Tests; public class Placeholder {}
