package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours that stay apart for colour-blind readers (Okabe–Ito).
var (
	oursColor     = color.RGBA{R: 0, G: 114, B: 178, A: 255}
	clientGoColor = color.RGBA{R: 213, G: 94, B: 0, A: 255}
	targetColor   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// floorMS is where the handover latency axis starts; smaller values (none
// expected: a client-go successor starting before its predecessor's work
// returned would be one) are drawn there.
const floorMS = 0.1

// WritePlot draws the distributions (empirical CDFs, log time axis) of the
// graceful handover latency and of the crash takeover time beyond the
// lease, for both implementations and every profile, as a PNG at path.
func (r *Results) WritePlot(path string) error {
	hp := ecdfPlot("Graceful handover: work returned → next leader's work starts", "latency (ms, log scale)")
	cp := ecdfPlot("Crash takeover: time beyond the lease duration", "successor's work starts − last accepted renewal − lease duration (s)")
	// Linear: client-go can take over before the lease has run out (see
	// docs/BENCHMARKS.md), and a log axis would hide that.
	cp.X.Scale, cp.X.Tick.Marker = plot.LinearScale{}, plot.DefaultTicks{}
	var hmin, hmax, cmin, cmax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range r.Profiles {
		dashes := []vg.Length(nil)
		if p.Profile.Name != "default" {
			dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		label := func(i Impl) string {
			return fmt.Sprintf("%s, %s (%v lease)", i, p.Profile.Name, p.Profile.LeaseDuration)
		}
		for _, h := range p.Handover {
			if err := addECDF(hp, h.Latency.SamplesMS, implColor(h.Impl), dashes, label(h.Impl)+fmt.Sprintf(", n=%d", h.Latency.N), floorMS, &hmin, &hmax); err != nil {
				return err
			}
		}
		for _, c := range p.Crash {
			secs := make([]float64, len(c.BeyondLease.SamplesMS))
			for i, v := range c.BeyondLease.SamplesMS {
				secs[i] = v / 1000
			}
			if err := addECDF(cp, secs, implColor(c.Impl), dashes, label(c.Impl)+fmt.Sprintf(", n=%d", c.BeyondLease.N), math.Inf(-1), &cmin, &cmax); err != nil {
				return err
			}
		}
	}
	if err := addTarget(hp, 50, "leadership's target: p99 ≤ 50 ms", &hmin, &hmax); err != nil {
		return err
	}
	if err := addTarget(cp, 0.25, "leadership's target: p99 ≤ lease + 250 ms", &cmin, &cmax); err != nil {
		return err
	}
	setLogRange(hp, hmin, hmax)
	pad := (cmax - cmin) * 0.05
	cp.X.Min, cp.X.Max = math.Min(0, cmin)-pad, cmax+pad

	const w, h = 32 * vg.Centimeter, 14 * vg.Centimeter
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	cs := plot.Align([][]*plot.Plot{{hp, cp}}, tiles, dc)
	hp.Draw(cs[0][0])
	cp.Draw(cs[0][1])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot: %w", err)
	}
	return f.Close()
}

func implColor(i Impl) color.Color {
	if i.ours() {
		return oursColor
	}
	return clientGoColor
}

func ecdfPlot(title, xlabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "fraction of trials ≤ x"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	// Bottom right, inside the axes: an empirical CDF leaves it empty.
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*3, vg.Millimeter*3
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// addECDF draws the empirical CDF of samples, values below floor drawn at
// floor (for a log axis).
func addECDF(p *plot.Plot, samples []float64, c color.Color, dashes []vg.Length, label string, floor float64, lo, hi *float64) error {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	n := float64(len(s))
	xys := make(plotter.XYs, 0, 2*len(s))
	for i, v := range s {
		v = math.Max(v, floor)
		*lo, *hi = math.Min(*lo, v), math.Max(*hi, v)
		xys = append(xys, plotter.XY{X: v, Y: float64(i) / n}, plotter.XY{X: v, Y: float64(i+1) / n})
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	l.Color, l.Width, l.Dashes = c, vg.Points(1.6), dashes
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

func addTarget(p *plot.Plot, x float64, label string, lo, hi *float64) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: 1}})
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	*lo, *hi = math.Min(*lo, x), math.Max(*hi, x)
	l.Color, l.Width, l.Dashes = targetColor, vg.Points(1), []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

// setLogRange widens the axis to whole decades around the data.
func setLogRange(p *plot.Plot, lo, hi float64) {
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 1, 1000
	}
	p.X.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.X.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
	if p.X.Max <= p.X.Min {
		p.X.Max = p.X.Min * 10
	}
}
