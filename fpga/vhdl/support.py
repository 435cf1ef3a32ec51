"""Fixed VHDL support packages copied into every export.

``sme_pkg``: the small conversion functions generated code uses so that every value keeps
its exact width (two's-complement wrap between widths, Bool ↔ std_logic, select, clamp,
floor division). ``tb_sme_pkg``: what the trace-replay testbench needs (CSV fields, decimal
numbers of any width without 32-bit ``integer`` arithmetic, messages).
"""

from __future__ import annotations

SME_PKG = """\
-- sme_pkg: width-exact conversions used by the code smeflow generates.
-- Every function here has Python's two's-complement semantics: converting to a narrower
-- width keeps the low bits (wrap-around), to a wider one sign- or zero-extends.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

package sme_pkg is
  function to_u(x : unsigned; w : positive) return unsigned;
  function to_u(x : signed; w : positive) return unsigned;
  function to_s(x : unsigned; w : positive) return signed;
  function to_s(x : signed; w : positive) return signed;
  function to_sl(b : boolean) return std_logic;
  function to_u(b : boolean; w : positive) return unsigned;
  function sel(c : boolean; a, b : unsigned) return unsigned;
  function sel(c : boolean; a, b : signed) return signed;
  function sel(c : boolean; a, b : std_logic) return std_logic;
  function sel(c : boolean; a, b : boolean) return boolean;
  function clamp(x, lo, hi : signed) return signed;
  function clamp(x, lo, hi : unsigned) return unsigned;
  -- Python's // (floor division) and % (remainder with the divisor's sign).
  function floor_div(a, b : signed) return signed;
end package;

package body sme_pkg is
  function to_u(x : unsigned; w : positive) return unsigned is
    variable r : unsigned(w - 1 downto 0) := (others => '0');
    alias xx : unsigned(x'length - 1 downto 0) is x;
  begin
    for i in 0 to w - 1 loop
      if i < x'length then
        r(i) := xx(i);
      end if;
    end loop;
    return r;
  end function;

  function to_u(x : signed; w : positive) return unsigned is
    variable r : unsigned(w - 1 downto 0);
    alias xx : signed(x'length - 1 downto 0) is x;
  begin
    for i in 0 to w - 1 loop
      if i < x'length then
        r(i) := xx(i);
      else
        r(i) := xx(x'length - 1);
      end if;
    end loop;
    return r;
  end function;

  function to_s(x : unsigned; w : positive) return signed is
  begin
    return signed(to_u(x, w));
  end function;

  function to_s(x : signed; w : positive) return signed is
  begin
    return signed(to_u(x, w));
  end function;

  function to_sl(b : boolean) return std_logic is
  begin
    if b then
      return '1';
    end if;
    return '0';
  end function;

  function to_u(b : boolean; w : positive) return unsigned is
  begin
    if b then
      return to_unsigned(1, w);
    end if;
    return to_unsigned(0, w);
  end function;

  function sel(c : boolean; a, b : unsigned) return unsigned is
  begin
    if c then
      return a;
    end if;
    return b;
  end function;

  function sel(c : boolean; a, b : signed) return signed is
  begin
    if c then
      return a;
    end if;
    return b;
  end function;

  function sel(c : boolean; a, b : std_logic) return std_logic is
  begin
    if c then
      return a;
    end if;
    return b;
  end function;

  function sel(c : boolean; a, b : boolean) return boolean is
  begin
    if c then
      return a;
    end if;
    return b;
  end function;

  function clamp(x, lo, hi : signed) return signed is
  begin
    if x < lo then
      return lo;
    elsif x > hi then
      return hi;
    end if;
    return x;
  end function;

  function clamp(x, lo, hi : unsigned) return unsigned is
  begin
    if x < lo then
      return lo;
    elsif x > hi then
      return hi;
    end if;
    return x;
  end function;

  function floor_div(a, b : signed) return signed is
    -- a - (a mod b) is a multiple of b, but exceeds a's range by up to |b| - 1 (b < 0 and
    -- a near its maximum), so it is computed one bit wider; the quotient fits in a.
    constant n : positive := maximum(a'length, b'length) + 1;
    variable wa : signed(n - 1 downto 0);
    variable wb : signed(n - 1 downto 0);
  begin
    wa := resize(a, n);
    wb := resize(b, n);
    wa := wa - (wa mod wb);
    return resize(wa / wb, a'length);
  end function;
end package body;
"""

TB_PKG = """\
-- tb_sme_pkg: reading the CSV trace written by sme.trace.Trace.write_csv.
-- Numbers are parsed digit by digit into 16-bit limbs, so any width works (VHDL integer is
-- only 32 bits in GHDL).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use std.textio.all;

package tb_sme_pkg is
  -- The next comma-separated field of l (without the comma).
  procedure read_field(l : inout line; fld : inout line);
  -- Word k (0-based) of a space-separated field (array values).
  function word(s : string; k : natural) return string;
  -- Decimal text -> w-bit two's-complement pattern.
  function dec_to_bits(s : string; w : positive) return unsigned;
  function same(s : string; v : unsigned) return boolean;
  function same(s : string; v : signed) return boolean;
  function same(s : string; v : std_logic) return boolean;
  function to_dec(v : unsigned) return string;
  function to_dec(v : signed) return string;
  function to_dec(v : std_logic) return string;
  function to_sl(s : string) return std_logic;
end package;

package body tb_sme_pkg is
  procedure read_field(l : inout line; fld : inout line) is
    variable c : character;
    variable ok : boolean;
    variable buf : string(1 to 4096);
    variable n : natural := 0;
  begin
    deallocate(fld);
    loop
      read(l, c, ok);
      exit when not ok or c = ',';
      if c /= ' ' and c /= CR and c /= HT then
        n := n + 1;
        buf(n) := c;
      elsif c = ' ' and n > 0 then
        n := n + 1;
        buf(n) := c;
      end if;
    end loop;
    fld := new string'(buf(1 to n));
  end procedure;

  function word(s : string; k : natural) return string is
    variable first, count : natural := 0;
    variable inword : boolean := false;
  begin
    for i in s'range loop
      if s(i) /= ' ' and not inword then
        inword := true;
        first := i;
      elsif s(i) = ' ' and inword then
        inword := false;
        if count = k then
          return s(first to i - 1);
        end if;
        count := count + 1;
      end if;
    end loop;
    if inword and count = k then
      return s(first to s'right);
    end if;
    return "";
  end function;

  type limbs_t is array (natural range <>) of natural;

  function dec_to_bits(s : string; w : positive) return unsigned is
    constant NL : positive := (w + 15) / 16 + 1;
    variable lb : limbs_t(0 to NL - 1) := (others => 0);
    variable t, carry : natural;
    variable neg : boolean := false;
    variable r : unsigned(16 * NL - 1 downto 0);
  begin
    assert s'length > 0 report "empty number" severity failure;
    for i in s'range loop
      if i = s'left and s(i) = '-' then
        neg := true;
      elsif s(i) >= '0' and s(i) <= '9' then
        carry := character'pos(s(i)) - character'pos('0');
        for k in 0 to NL - 1 loop
          t := lb(k) * 10 + carry;
          lb(k) := t mod 65536;
          carry := t / 65536;
        end loop;
      else
        report "bad digit in '" & s & "'" severity failure;
      end if;
    end loop;
    for k in 0 to NL - 1 loop
      r(16 * k + 15 downto 16 * k) := to_unsigned(lb(k), 16);
    end loop;
    if neg then
      r := 0 - r;
    end if;
    return r(w - 1 downto 0);
  end function;

  function same(s : string; v : unsigned) return boolean is
  begin
    return dec_to_bits(s, v'length) = v;
  end function;

  function same(s : string; v : signed) return boolean is
  begin
    return dec_to_bits(s, v'length) = unsigned(v);
  end function;

  function same(s : string; v : std_logic) return boolean is
  begin
    return (s = "1" and v = '1') or (s = "0" and v = '0');
  end function;

  function to_dec(v : unsigned) return string is
    variable x : unsigned(v'length + 3 downto 0) := resize(v, v'length + 4);
    variable buf : string(1 to 80);
    variable n : natural := 0;
    variable d : natural;
  begin
    if is_x(std_logic_vector(v)) then
      return "X";
    end if;
    loop
      d := to_integer(x mod 10);
      x := x / 10;
      buf(buf'right - n) := character'val(character'pos('0') + d);
      n := n + 1;
      exit when x = 0;
    end loop;
    return buf(buf'right - n + 1 to buf'right);
  end function;

  function to_dec(v : signed) return string is
  begin
    if is_x(std_logic_vector(v)) then
      return "X";
    end if;
    if v(v'left) = '1' then
      return "-" & to_dec(unsigned(0 - resize(v, v'length + 1)));
    end if;
    return to_dec(unsigned(v));
  end function;

  function to_dec(v : std_logic) return string is
  begin
    if v = '1' then
      return "1";
    elsif v = '0' then
      return "0";
    end if;
    return std_logic'image(v);
  end function;

  function to_sl(s : string) return std_logic is
  begin
    if s = "1" then
      return '1';
    end if;
    return '0';
  end function;
end package body;
"""
