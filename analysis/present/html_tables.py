"""HTML tables for the report: a small polars frame as an escaped table, numbers with 4
significant digits (scientific when large or tiny), computed as polars expressions."""

from __future__ import annotations

import html

import polars as pl


def _fmt(col: str) -> pl.Expr:
    """A numeric column as text with 4 significant digits (scientific when large or tiny)."""
    x = pl.col(col).cast(pl.Float64)
    exp = (x.abs().log10() + 1e-9).floor()  # + 1e-9: log10(1e21) may come out as 20.999...
    mantissa = (x / pl.lit(10.0).pow(exp)).round(3)
    carry = mantissa.abs() >= 10  # 9.9999e9 rounds to 10.0: write 1e10
    mantissa = pl.when(carry).then(mantissa / 10).otherwise(mantissa)
    sci = pl.format(
        "{}e{}", mantissa.cast(pl.String).str.replace(r"\.0$", ""), (exp + carry.cast(pl.Float64)).cast(pl.Int64)
    )
    plain = x.round_sig_figs(4).cast(pl.String)
    return (
        pl.when(x.is_null() | x.is_nan()).then(pl.lit("–"))
        .when(x.is_infinite()).then(pl.when(x > 0).then(pl.lit("∞")).otherwise(pl.lit("−∞")))
        .when((x.abs() >= 1e5) | ((x.abs() < 1e-3) & (x != 0))).then(sci)
        .otherwise(plain.str.replace(r"\.0$", ""))
        .alias(col)
    )  # fmt: skip


def html_table(df: pl.DataFrame, *, max_rows: int = 50) -> str:
    """Render a small frame as an HTML table (cells escaped; numbers via ``_fmt``)."""
    df = df.head(max_rows)
    if df.width == 0:
        return ""
    text = df.select(
        _fmt(c)
        if df.schema[c].is_numeric() and not df.schema[c].is_integer()
        else pl.col(c).cast(pl.String).fill_null("–")
        for c in df.columns
    )
    esc = [
        pl.col(c)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
        for c in text.columns
    ]
    opening = [pl.lit('<td class="n">' if df.schema[c].is_numeric() else "<td>") for c in text.columns]
    rows = text.select(
        row=pl.concat_str([pl.concat_str([o, e, pl.lit("</td>")]) for o, e in zip(opening, esc, strict=True)])
    )
    body = "\n".join(rows.select(pl.format("<tr>{}</tr>", pl.col("row"))).to_series().to_list())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
