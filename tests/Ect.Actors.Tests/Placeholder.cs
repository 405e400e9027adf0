namespace Ect.Actors.Tests; public class Placeholder {}
