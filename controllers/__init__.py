"""Controllers behind one interface: PD baseline, GRU / delta-GRU (torch), feature sets, export."""
