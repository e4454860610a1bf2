<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Money and percentages as integers: amounts in cents, percentages in hundredths of a percent.
 *
 * The web services exchange money as decimal strings with at most two places ("10000.00", "19.5");
 * nothing here ever goes through a float. This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class money {

    /** @var string The accepted form of an amount or a percentage on the wire. */
    public const PATTERN = '/^\d{1,10}(\.\d{1,2})?$/D';

    /**
     * Parse a decimal amount into cents.
     *
     * @param string $value For example "10000", "19.5", "0.05".
     * @return int|null The amount in cents, or null when the value does not match the pattern.
     */
    public static function parse(string $value): ?int {
        if (!preg_match(self::PATTERN, $value)) {
            return null;
        }
        $parts = explode('.', $value);
        $whole = (int) $parts[0];
        $fraction = isset($parts[1]) ? (int) str_pad($parts[1], 2, '0') : 0;
        return $whole * 100 + $fraction;
    }

    /**
     * Parse a percentage (0 to 100, at most two places) into hundredths of a percent.
     *
     * @param string $value For example "20", "12.5".
     * @return int|null 0 to 10000, or null when the value is not a valid percentage.
     */
    public static function parse_percent(string $value): ?int {
        $hundredths = self::parse($value);
        if ($hundredths === null || $hundredths > 10000) {
            return null;
        }
        return $hundredths;
    }

    /**
     * Format cents as a plain decimal string with exactly two places.
     *
     * @param int $cents The amount in cents (may be negative).
     * @return string For example "10000.00", "-0.50".
     */
    public static function format(int $cents): string {
        $sign = $cents < 0 ? '-' : '';
        $cents = abs($cents);
        return $sign . intdiv($cents, 100) . '.' . str_pad((string) ($cents % 100), 2, '0', STR_PAD_LEFT);
    }

    /**
     * Normalise a stored or received decimal to two places ("20" becomes "20.00").
     *
     * Values read back from the database may carry more places ("20.00000"), so this accepts any
     * non-negative decimal and rounds half up to cents.
     *
     * @param string|int|float|null $value The value.
     * @return string|null The value with exactly two places, or null for null or an unreadable value.
     */
    public static function normalise($value): ?string {
        if ($value === null) {
            return null;
        }
        $value = trim((string) $value);
        if (!preg_match('/^(-?)(\d+)(?:\.(\d*))?$/D', $value, $matches)) {
            return null;
        }
        $fraction = str_pad($matches[3] ?? '', 3, '0');
        $cents = (int) $matches[2] * 100 + (int) substr($fraction, 0, 2);
        if ((int) $fraction[2] >= 5) {
            $cents++;
        }
        return self::format($matches[1] === '-' ? -$cents : $cents);
    }

    /**
     * The scholarship amount for a fee and a percentage, rounded half up to the cent.
     *
     * @param int $feecents The fee in cents.
     * @param int $percenthundredths The percentage in hundredths (2000 = 20%).
     * @return int The scholarship in cents.
     */
    public static function percentage_of(int $feecents, int $percenthundredths): int {
        return intdiv($feecents * $percenthundredths + 5000, 10000);
    }
}
