// Reads TorchSharp.dll's IL: with "--scan", every method that calls Scalar.op_Implicit and never Dispose (its temporary
// Scalar is left to the GC finalizer, which may free it while libtorch still reads it); with method names, the calls
// each Tensor method of that name makes. See docs/torchsharp-scalar-race.md.
using System.Reflection;
using System.Reflection.Emit;
var asm = Assembly.LoadFrom(args[0]);
if (args[1] == "--scan") {
  var opsA = typeof(OpCodes).GetFields().Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);
  Type[] tys; try { tys = asm.GetTypes(); } catch (ReflectionTypeLoadException e) { tys = e.Types.Where(x => x != null).ToArray()!; }
  foreach (var ty in tys) foreach (var m in ty.GetMethods(BindingFlags.Public|BindingFlags.Static|BindingFlags.Instance|BindingFlags.DeclaredOnly)) {
    byte[]? il; try { il = m.GetMethodBody()?.GetILAsByteArray(); } catch { continue; } if (il is null) continue;
    bool imp = false, disp = false;
    for (int i = 0; i < il.Length;) {
      short v = il[i]; OpCode op;
      if (v == 0xFE) { op = opsA[(short)(0xFE00 | il[i+1])]; i += 2; } else { op = opsA[v]; i += 1; }
      if (op.OperandType == OperandType.InlineMethod) { try { var mm = m.Module.ResolveMethod(BitConverter.ToInt32(il, i)); if (mm!.DeclaringType!.Name == "Scalar" && mm.Name == "op_Implicit") imp = true; if (mm.Name == "Dispose") disp = true; } catch {} }
      i += op.OperandType switch { OperandType.InlineNone => 0, OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1, OperandType.InlineVar => 2, OperandType.InlineI8 or OperandType.InlineR => 8, OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i), _ => 4 };
    }
    if (imp && !disp) Console.WriteLine($"{ty.FullName}.{m.Name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))})");
  }
  return;
}
var t = asm.GetType("TorchSharp.torch+Tensor")!;
var ops = typeof(OpCodes).GetFields().Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);
foreach (var name in args.Skip(1)) {
  foreach (var m in t.GetMethods(BindingFlags.Public|BindingFlags.Static|BindingFlags.Instance).Where(m => m.Name == name)) {
    var ps = string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name));
    var il = m.GetMethodBody()?.GetILAsByteArray(); if (il is null) continue;
    var calls = new List<string>();
    for (int i = 0; i < il.Length;) {
      short v = il[i]; OpCode op;
      if (v == 0xFE) { op = ops[(short)(0xFE00 | il[i+1])]; i += 2; } else { op = ops[v]; i += 1; }
      if (op.OperandType == OperandType.InlineMethod) { var mm = m.Module.ResolveMethod(BitConverter.ToInt32(il, i)); calls.Add(mm!.DeclaringType!.Name + "." + mm.Name); }
      i += op.OperandType switch { OperandType.InlineNone => 0, OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1, OperandType.InlineVar => 2, OperandType.InlineI8 or OperandType.InlineR => 8, OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i), _ => 4 };
    }
    Console.WriteLine($"{name}({ps}): {string.Join(" ", calls)}");
  }
}
